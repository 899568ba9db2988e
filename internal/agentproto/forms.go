package agentproto

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Poll is the agent's long poll: who it is (node and check-in token), which
// boot it runs, the generation it booted, and a fresh nonce that the
// instruction answering it must carry.
type Poll struct {
	Node       string
	Token      string
	BootID     string
	Nonce      string
	Generation string // "" when the agent does not know it
}

// Form encodes p as a form body.
func (p Poll) Form() url.Values {
	v := url.Values{"node": {p.Node}, "token": {p.Token}, "boot_id": {p.BootID}, "nonce": {p.Nonce}}
	if p.Generation != "" {
		v.Set("generation", p.Generation)
	}
	return v
}

// ParsePoll reads a poll from a form, checking every field.
func ParsePoll(v url.Values) (Poll, error) {
	p := Poll{Node: one(v, "node"), Token: one(v, "token"), BootID: one(v, "boot_id"),
		Nonce: one(v, "nonce"), Generation: one(v, "generation")}
	if err := checkWho(p.Node, p.Token, p.BootID, p.Nonce); err != nil {
		return p, fmt.Errorf("poll: %w", err)
	}
	if p.Generation != "" && !ValidName(p.Generation) {
		return p, fmt.Errorf("poll: bad generation %q", clip(p.Generation))
	}
	return p, nil
}

// Report is what the agent did with an instruction: loaded it (kexec
// follows), refused it, or failed carrying it out.
type Report struct {
	Node   string
	Token  string
	BootID string
	Nonce  string // the nonce of the poll the instruction answered
	Result string // ResultLoaded, ResultRefused or ResultFailed
	Reason string // one line: why (refused, failed); for ResultLoaded how it was loaded, or ""
}

// MaxReason bounds a report's reason, in bytes.
const MaxReason = 512

// Form encodes r as a form body.
func (r Report) Form() url.Values {
	v := url.Values{"node": {r.Node}, "token": {r.Token}, "boot_id": {r.BootID}, "nonce": {r.Nonce}, "result": {r.Result}}
	if r.Reason != "" {
		v.Set("reason", r.Reason)
	}
	return v
}

// ParseReport reads a report from a form, checking every field.
func ParseReport(v url.Values) (Report, error) {
	r := Report{Node: one(v, "node"), Token: one(v, "token"), BootID: one(v, "boot_id"),
		Nonce: one(v, "nonce"), Result: one(v, "result"), Reason: one(v, "reason")}
	if err := checkWho(r.Node, r.Token, r.BootID, r.Nonce); err != nil {
		return r, fmt.Errorf("report: %w", err)
	}
	switch r.Result {
	case ResultLoaded, ResultRefused, ResultFailed:
	default:
		return r, fmt.Errorf("report: result %q: want %s, %s or %s", clip(r.Result), ResultLoaded, ResultRefused, ResultFailed)
	}
	if len(r.Reason) > MaxReason || !printable(r.Reason) {
		return r, fmt.Errorf("report: reason: want one line of at most %d printable bytes", MaxReason)
	}
	if r.Result != ResultLoaded && strings.TrimSpace(r.Reason) == "" {
		return r, errors.New("report: a refusal or failure needs its reason")
	}
	return r, nil
}

// one returns the single value of key ("" when absent; a repeated key is
// read as "", which every check refuses where a value is required).
func one(v url.Values, key string) string {
	if len(v[key]) != 1 {
		return ""
	}
	return v[key][0]
}

func checkWho(node, token, bootID, nonce string) error {
	switch {
	case !ValidName(node):
		return fmt.Errorf("bad node %q", clip(node))
	case token == "" || len(token) > 128 || !printable(token) || strings.Contains(token, " "):
		return errors.New("bad token")
	case !ValidBootID(bootID):
		return fmt.Errorf("bad boot_id %q", clip(bootID))
	case !ValidNonce(nonce):
		return fmt.Errorf("bad nonce %q: want %d lower-case hex digits", clip(nonce), NonceLen)
	}
	return nil
}
