package nodeagent

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/netbootui/netbootui/internal/agentproto"
)

// Kernel-argument keys the agent reads (those of roottransport.Params
// marked ReadByNodeAgent; a test checks they agree).
var cmdlineKeys = map[string]string{
	"netbootui.url":        "NETBOOTUI_URL",
	"netbootui.node":       "NETBOOTUI_NODE",
	"netbootui.token":      "NETBOOTUI_TOKEN",
	"netbootui.gen":        "NETBOOTUI_GEN",
	"netbootui.heads":      "NETBOOTUI_HEADS",
	agentproto.KeyAgentKey: "NETBOOTUI_AGENT_KEY",
}

// LoadConfig reads the agent's parameters: first envFile (the live init's
// /run/netbootui.env, shell assignments with single-quoted values), then,
// for those still missing, the netbootui.* words of cmdline (the kernel's
// /proc/cmdline). The daemon's key is taken from the command line only: the
// kernel's own record of how it was booted. bootID is the kernel's boot id.
func LoadConfig(envFile, cmdlineFile, bootIDFile string) (Config, error) {
	vals := map[string]string{}
	if b, err := os.ReadFile(envFile); err == nil {
		for k, v := range parseEnv(b) {
			if k != "NETBOOTUI_AGENT_KEY" {
				vals[k] = v
			}
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return Config{}, err
	}
	cl, err := os.ReadFile(cmdlineFile)
	if err != nil {
		return Config{}, err
	}
	for k, v := range parseCmdline(string(cl)) {
		if vals[k] == "" {
			vals[k] = v
		}
	}
	var cfg Config
	cfg.URL, cfg.Node, cfg.Token, cfg.Generation = vals["NETBOOTUI_URL"], vals["NETBOOTUI_NODE"], vals["NETBOOTUI_TOKEN"], vals["NETBOOTUI_GEN"]
	for _, h := range strings.Split(vals["NETBOOTUI_HEADS"], ",") {
		if h = strings.TrimSpace(h); h != "" {
			cfg.Heads = append(cfg.Heads, h)
		}
	}
	if s := vals["NETBOOTUI_AGENT_KEY"]; s != "" {
		if cfg.Key, err = agentproto.DecodePublicKey(s); err != nil {
			return cfg, err
		}
	}
	id, err := os.ReadFile(bootIDFile)
	if err != nil {
		return cfg, fmt.Errorf("boot id: %w", err)
	}
	cfg.BootID = strings.TrimSpace(string(id))
	return cfg, nil
}

// parseCmdline returns the agent's keys found among the words of a kernel
// command line, by their environment name.
func parseCmdline(s string) map[string]string {
	out := map[string]string{}
	for _, w := range strings.Fields(s) {
		k, v, ok := strings.Cut(w, "=")
		if env := cmdlineKeys[k]; ok && env != "" {
			out[env] = v
		}
	}
	return out
}

// parseEnv reads NAME='value' lines as init.sh writes them (for a quote
// inside a value it ends the quoted text, writes \' and quotes again);
// lines of any other shape are skipped.
func parseEnv(b []byte) map[string]string {
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), "=")
		if !ok || !strings.HasPrefix(name, "NETBOOTUI_") {
			continue
		}
		if v, ok := unquote(rest); ok {
			out[name] = v
		}
	}
	return out
}

// unquote reads a sequence of single-quoted strings and \' escapes, or a
// bare word without quotes, blanks or backslashes.
func unquote(s string) (string, bool) {
	if !strings.ContainsAny(s, `'"\ $`+"`") {
		return s, true
	}
	var b strings.Builder
	for s != "" {
		switch {
		case s[0] == '\'':
			end := strings.IndexByte(s[1:], '\'')
			if end < 0 {
				return "", false
			}
			b.WriteString(s[1 : 1+end])
			s = s[2+end:]
		case strings.HasPrefix(s, `\'`):
			b.WriteByte('\'')
			s = s[2:]
		default:
			return "", false
		}
	}
	return b.String(), true
}
