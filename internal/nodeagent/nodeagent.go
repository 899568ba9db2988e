// Package nodeagent is the node side of reboot-clean by kexec: the agent
// (cmd/netbootui-agent, a static binary in the live initramfs) long-polls
// the daemon, checks an instruction's signature and binding (package
// agentproto), fetches the generation's kernel and initrd, checks their
// sha256 against the sums the signed instruction carries from the
// generation's manifest, loads them with kexec and executes them. It
// imports only the standard library, agentproto and u-root's kexec, so the
// binary stays small.
package nodeagent

import (
	"bytes"
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/netbootui/netbootui/internal/agentproto"
)

// Loader loads a kernel and initrd for kexec and executes them.
type Loader interface {
	// Load stages kernel and initrd with cmdline (kexec load).
	Load(kernel, initrd *os.File, cmdline string) error
	// Exec boots what Load staged; it does not return when it works.
	Exec() error
}

// Config is what the agent knows about itself and its daemon.
type Config struct {
	URL string // the daemon's base URL (netbootui.url)
	// Heads are the other heads' base URLs (netbootui.heads, several
	// heads): when the head the agent polls does not answer, it polls the
	// next, and stays with the one that answers.
	Heads      []string
	Node       string
	Token      string
	Generation string // the generation this boot runs
	BootID     string // /proc/sys/kernel/random/boot_id
	Key        ed25519.PublicKey

	// Client makes the requests (default: a client whose timeout covers a
	// whole poll).
	Client *http.Client
	// Loader does the kexec (default: KexecLoader).
	Loader Loader
	// Dir receives the downloaded kernel and initrd (default /run/netbootui/kexec).
	Dir string
	// Logf logs a line (default: to stderr).
	Logf func(format string, args ...any)
	// BeforeExec runs after a successful load, before Exec (default:
	// sync(2), so that what reaches disk or a persisted NFS path is written).
	BeforeExec func()
}

// Agent polls the daemon and carries out its instructions.
type Agent struct {
	cfg   Config
	bases []string     // cfg.URL, then cfg.Heads
	cur   atomic.Int32 // the index in bases of the head that answered last
}

// New returns an agent for cfg, its defaults filled.
func New(cfg Config) (*Agent, error) {
	switch {
	case cfg.URL == "" || cfg.Node == "" || cfg.Token == "":
		return nil, errors.New("nodeagent: need the daemon's URL, the node's name and its token")
	case len(cfg.Key) != ed25519.PublicKeySize:
		return nil, fmt.Errorf("nodeagent: no daemon key (%s on the kernel command line)", agentproto.KeyAgentKey)
	case !agentproto.ValidBootID(cfg.BootID):
		return nil, fmt.Errorf("nodeagent: bad boot id %q", cfg.BootID)
	}
	cfg.URL = strings.TrimRight(cfg.URL, "/")
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 90 * time.Second}
	}
	if cfg.Loader == nil {
		cfg.Loader = KexecLoader{}
	}
	if cfg.Dir == "" {
		cfg.Dir = "/run/netbootui/kexec"
	}
	if cfg.Logf == nil {
		cfg.Logf = func(format string, args ...any) { fmt.Fprintf(os.Stderr, "netbootui-agent: "+format+"\n", args...) }
	}
	if cfg.BeforeExec == nil {
		cfg.BeforeExec = syncDisks
	}
	a := &Agent{cfg: cfg, bases: []string{cfg.URL}}
	for _, h := range cfg.Heads {
		if h = strings.TrimRight(h, "/"); h != "" && !slices.Contains(a.bases, h) {
			a.bases = append(a.bases, h)
		}
	}
	return a, nil
}

// Head is the base URL of the head the agent polls now.
func (a *Agent) Head() string { return a.bases[a.cur.Load()] }

// Run polls until ctx ends: at once after an answer, with a doubling delay
// (2 s to 60 s) after a failure.
func (a *Agent) Run(ctx context.Context) error {
	delay := 2 * time.Second
	for ctx.Err() == nil {
		err := a.PollOnce(ctx)
		if err == nil {
			delay = 2 * time.Second
			continue
		}
		if ctx.Err() != nil {
			break
		}
		a.cfg.Logf("%v; polling again in %v", err, delay)
		select {
		case <-time.After(delay):
		case <-ctx.Done():
		}
		delay = min(delay*2, time.Minute)
	}
	return ctx.Err()
}

// PollOnce makes one long poll and carries out the instruction that
// answers it, if any. An error is a poll that failed (network, refusal);
// an instruction refused or failed is reported to the daemon, not returned.
func (a *Agent) PollOnce(ctx context.Context) error {
	nonce, err := agentproto.NewNonce()
	if err != nil {
		return err
	}
	p := agentproto.Poll{Node: a.cfg.Node, Token: a.cfg.Token, BootID: a.cfg.BootID, Nonce: nonce, Generation: a.cfg.Generation}
	resp, err := a.post(ctx, agentproto.PollPath, p.Form())
	if err != nil {
		return fmt.Errorf("poll: %w", err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusNoContent:
		return nil
	case http.StatusOK:
	default:
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
		return fmt.Errorf("poll: %s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, agentproto.MaxInstruction+1))
	if err != nil {
		return fmt.Errorf("poll: reading the instruction: %w", err)
	}
	a.Handle(ctx, p, data)
	return nil
}

// Handle carries out data, the answer to poll p: verify it, fetch and
// check the files, load them, report, execute. Every outcome short of the
// kexec itself is reported to the daemon.
func (a *Agent) Handle(ctx context.Context, p agentproto.Poll, data []byte) {
	in, err := agentproto.Verify(data, a.cfg.Key, agentproto.Expect{Node: p.Node, BootID: p.BootID, Nonce: p.Nonce})
	if err != nil {
		a.cfg.Logf("instruction refused: %v", err)
		a.report(ctx, p, agentproto.ResultRefused, "instruction refused: "+err.Error())
		return
	}
	a.cfg.Logf("reboot-clean by kexec into generation %s", in.Generation)
	if err := os.MkdirAll(a.cfg.Dir, 0o700); err != nil {
		a.report(ctx, p, agentproto.ResultFailed, err.Error())
		return
	}
	kernel, err := a.fetch(ctx, "kernel", in.Kernel, filepath.Join(a.cfg.Dir, "vmlinuz"))
	if err != nil {
		a.refuseOrFail(ctx, p, err)
		return
	}
	defer kernel.Close()
	initrd, err := a.fetch(ctx, "initrd", in.Initrd, filepath.Join(a.cfg.Dir, "initrd"))
	if err != nil {
		a.refuseOrFail(ctx, p, err)
		return
	}
	defer initrd.Close()
	if err := a.cfg.Loader.Load(kernel, initrd, in.Cmdline); err != nil {
		a.cfg.Logf("kexec load: %v", err)
		a.report(ctx, p, agentproto.ResultFailed, "kexec load: "+err.Error())
		return
	}
	// The files were read by the kernel: the RAM they hold goes back.
	os.Remove(kernel.Name())
	os.Remove(initrd.Name())
	// A loader that names itself (KexecLoader: kexec-tools or
	// kexec_file_load) says so in the report: the daemon's event shows it.
	how := ""
	if s, ok := a.cfg.Loader.(fmt.Stringer); ok {
		how = s.String()
	}
	a.report(ctx, p, agentproto.ResultLoaded, how)
	a.cfg.Logf("kexec into generation %s with %s", in.Generation, cmp.Or(how, "the loader"))
	a.cfg.BeforeExec()
	if err := a.cfg.Loader.Exec(); err != nil {
		a.cfg.Logf("kexec exec: %v", err)
		a.report(ctx, p, agentproto.ResultFailed, "kexec exec: "+err.Error())
	}
}

// errMismatch marks a file whose bytes are not what the manifest says:
// a refusal, not a failure.
var errMismatch = errors.New("does not match the manifest")

func (a *Agent) refuseOrFail(ctx context.Context, p agentproto.Poll, err error) {
	a.cfg.Logf("%v", err)
	result := agentproto.ResultFailed
	if errors.Is(err, errMismatch) {
		result = agentproto.ResultRefused
	}
	a.report(ctx, p, result, err.Error())
}

// fetch downloads f to path, at most f.Size bytes, and checks its size
// and sha256. The file is returned open read-only (kexec_file_load refuses
// a file open for writing: ETXTBSY); on a mismatch it is removed.
func (a *Agent) fetch(ctx context.Context, what string, f agentproto.File, path string) (*os.File, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.URL, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	resp, err := a.cfg.Client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, redactURL(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", what, resp.Status)
	}
	out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(out, h), io.LimitReader(resp.Body, f.Size+1))
	fail := func(err error) (*os.File, error) {
		out.Close()
		os.Remove(path)
		return nil, err
	}
	if err != nil {
		return fail(fmt.Errorf("%s: %w", what, redactURL(err)))
	}
	if n != f.Size {
		return fail(fmt.Errorf("%s: %d bytes %w (%d)", what, n, errMismatch, f.Size))
	}
	if sum := hex.EncodeToString(h.Sum(nil)); sum != f.SHA256 {
		return fail(fmt.Errorf("%s: sha256 %s %w (%s)", what, sum, errMismatch, f.SHA256))
	}
	if err := out.Close(); err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return os.Open(path)
}

// redactURL drops the URL from a client error: it carries the node's
// fetch key.
func redactURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}

// report tells the daemon what became of the instruction answering p.
func (a *Agent) report(ctx context.Context, p agentproto.Poll, result, reason string) {
	if len(reason) > agentproto.MaxReason {
		reason = reason[:agentproto.MaxReason]
	}
	r := agentproto.Report{Node: p.Node, Token: p.Token, BootID: p.BootID, Nonce: p.Nonce, Result: result,
		Reason: strings.Map(func(c rune) rune {
			if c < 0x20 || c > 0x7e {
				return ' '
			}
			return c
		}, reason)}
	resp, err := a.post(ctx, agentproto.ReportPath, r.Form())
	if err != nil {
		a.cfg.Logf("report: %v", err)
		return
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		a.cfg.Logf("report: %s", resp.Status)
	}
}

// post sends form to path on the head that answered last, else on each
// of the others in turn (a head that does not answer at all is dead or cut
// off; one that answers with an error status is not passed over).
func (a *Agent) post(ctx context.Context, path string, form url.Values) (*http.Response, error) {
	start := int(a.cur.Load())
	var errs []error
	for i := range a.bases {
		k := (start + i) % len(a.bases)
		resp, err := a.postTo(ctx, a.bases[k], path, form)
		if err == nil {
			if k != start {
				a.cur.Store(int32(k))
				a.cfg.Logf("head %s does not answer: now on head %s", a.bases[start], a.bases[k])
			}
			return resp, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

func (a *Agent) postTo(ctx context.Context, base, path string, form url.Values) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+path, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := a.cfg.Client.Do(req)
	if err != nil {
		return nil, redactURL(err)
	}
	return resp, nil
}
