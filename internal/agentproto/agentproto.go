// Package agentproto is the wire protocol between the daemon and the node
// agent (cmd/netbootui-agent): the agent's long poll, the daemon's signed
// instruction, and the agent's report of what it did with it. It imports only
// the standard library, so the static agent binary stays small.
//
// The exchange, over the boot HTTP server:
//
//	agent  -> POST /agent/poll    node, token, boot_id, nonce, generation
//	daemon <- 204 (nothing to do, after up to PollWait) or 200 + Instruction
//	agent  -> POST /agent/report  node, token, boot_id, nonce, result, reason
//
// Every poll carries a fresh random nonce. An instruction is bound to the
// node, the boot it answers (boot_id), that poll's nonce and the generation
// it boots, and is signed with the daemon's ed25519 key, whose public half
// the node got on its kernel command line (netbootui.agent_key). The agent
// accepts an instruction only when the signature verifies and node, boot_id
// and nonce are its own and the current poll's: a forged instruction fails
// the signature, a replayed one names a nonce the agent is no longer
// waiting for.
package agentproto

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// Paths of the boot HTTP server the agent talks to, below the daemon's base
// URL (netbootui.url).
const (
	PollPath   = "/agent/poll"
	ReportPath = "/agent/report"
)

// KeyAgentKey is the kernel argument that carries the daemon's public key
// (EncodePublicKey) to the agent; it is a key of roottransport.Params.
const KeyAgentKey = "netbootui.agent_key"

// ActionRebootClean is the one action an instruction carries today: fetch
// the generation's kernel and initrd, check them and kexec into them.
const ActionRebootClean = "reboot-clean"

// Report results.
const (
	ResultLoaded  = "loaded"  // kernel and initrd verified and loaded; executing next
	ResultRefused = "refused" // the instruction was refused (Reason says why)
	ResultFailed  = "failed"  // accepted, but fetching or loading failed (Reason)
)

// MaxInstruction bounds an encoded instruction, in bytes.
const MaxInstruction = 8 << 10

// MaxCmdline bounds the command line an instruction carries (the x86 boot
// protocol's limit is 2048; this leaves room for other architectures).
const MaxCmdline = 4096

// MaxFileSize bounds the kernel and initrd sizes an instruction may name.
const MaxFileSize = 1 << 32

// magic is the first line of an encoded instruction.
const magic = "netbootui-instruction 1"

// File is a boot file an instruction names.
type File struct {
	URL    string // http(s) URL on the daemon, with the node's fetch key
	SHA256 string // 64 lower-case hex digits, from the generation's manifest
	Size   int64
}

// Instruction is what the daemon tells an agent to do. Every field is
// covered by the signature.
type Instruction struct {
	Action     string // ActionRebootClean
	Node       string
	BootID     string // the boot the instruction is for (the poll's boot_id)
	Nonce      string // the poll's nonce
	Generation string // the generation the kernel and initrd belong to
	Kernel     File
	Initrd     File
	Cmdline    string // the new kernel's command line
}

// fields lists the instruction's lines in their one order: encoding and
// parsing both walk it, so the signed bytes are canonical.
func (in *Instruction) fields() []struct {
	key string
	val *string
	num *int64
} {
	return []struct {
		key string
		val *string
		num *int64
	}{
		{"action", &in.Action, nil},
		{"node", &in.Node, nil},
		{"boot-id", &in.BootID, nil},
		{"nonce", &in.Nonce, nil},
		{"generation", &in.Generation, nil},
		{"kernel-url", &in.Kernel.URL, nil},
		{"kernel-sha256", &in.Kernel.SHA256, nil},
		{"kernel-size", nil, &in.Kernel.Size},
		{"initrd-url", &in.Initrd.URL, nil},
		{"initrd-sha256", &in.Initrd.SHA256, nil},
		{"initrd-size", nil, &in.Initrd.Size},
		{"cmdline", &in.Cmdline, nil},
	}
}

// body is the signed part of the encoding: the magic line, then one
// "key value" line per field.
func (in Instruction) body() []byte {
	var b bytes.Buffer
	b.WriteString(magic + "\n")
	for _, f := range in.fields() {
		b.WriteString(f.key + " ")
		if f.val != nil {
			b.WriteString(*f.val)
		} else {
			b.WriteString(strconv.FormatInt(*f.num, 10))
		}
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// Sign checks in and encodes it signed with key: the body, then a
// "signature BASE64" line.
func Sign(in Instruction, key ed25519.PrivateKey) ([]byte, error) {
	if err := in.Validate(); err != nil {
		return nil, err
	}
	body := in.body()
	sig := ed25519.Sign(key, body)
	out := append(body, "signature "+base64.RawURLEncoding.EncodeToString(sig)+"\n"...)
	if len(out) > MaxInstruction {
		return nil, fmt.Errorf("instruction: %d bytes, more than %d", len(out), MaxInstruction)
	}
	return out, nil
}

// Parse decodes an instruction without checking its signature: the fields
// and the signature. It is strict: every line once, in order, each value
// well-formed (Validate), nothing after the signature line.
func Parse(data []byte) (Instruction, []byte, []byte, error) {
	var in Instruction
	if len(data) > MaxInstruction {
		return in, nil, nil, fmt.Errorf("instruction: %d bytes, more than %d", len(data), MaxInstruction)
	}
	rest := data
	line := func() (string, error) {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			return "", errors.New("instruction: truncated (a line without its newline)")
		}
		l := string(rest[:i])
		rest = rest[i+1:]
		return l, nil
	}
	l, err := line()
	if err != nil {
		return in, nil, nil, err
	}
	if l != magic {
		return in, nil, nil, fmt.Errorf("instruction: first line %q, want %q", clip(l), magic)
	}
	for _, f := range in.fields() {
		l, err := line()
		if err != nil {
			return in, nil, nil, err
		}
		k, v, ok := strings.Cut(l, " ")
		if !ok || k != f.key {
			return in, nil, nil, fmt.Errorf("instruction: line %q, want %s", clip(l), f.key)
		}
		if f.val != nil {
			*f.val = v
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 || n > MaxFileSize || strconv.FormatInt(n, 10) != v {
			return in, nil, nil, fmt.Errorf("instruction: %s %q: want a size from 1 to %d", f.key, clip(v), int64(MaxFileSize))
		}
		*f.num = n
	}
	body := data[:len(data)-len(rest)]
	l, err = line()
	if err != nil {
		return in, nil, nil, err
	}
	k, v, _ := strings.Cut(l, " ")
	if k != "signature" {
		return in, nil, nil, fmt.Errorf("instruction: line %q, want signature", clip(l))
	}
	sig, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return in, nil, nil, errors.New("instruction: signature is not a base64url ed25519 signature")
	}
	if len(rest) != 0 {
		return in, nil, nil, errors.New("instruction: bytes after the signature")
	}
	if err := in.Validate(); err != nil {
		return in, nil, nil, err
	}
	return in, body, sig, nil
}

// Expect is what the agent knows the instruction it waits for must say.
type Expect struct {
	Node   string
	BootID string
	Nonce  string // the nonce of the poll this answers
}

// Errors of Verify, for errors.Is.
var (
	ErrSignature = errors.New("signature does not verify with the daemon's key")
	ErrBinding   = errors.New("instruction is not for this poll")
)

// Verify parses data and accepts it only when its signature verifies with
// pub and it is bound to want (node, boot and the current poll's nonce).
// A forged instruction fails with ErrSignature, a replayed one (another
// poll's nonce, another boot, another node) with ErrBinding.
func Verify(data []byte, pub ed25519.PublicKey, want Expect) (Instruction, error) {
	in, body, sig, err := Parse(data)
	if err != nil {
		return Instruction{}, err
	}
	if len(pub) != ed25519.PublicKeySize || !ed25519.Verify(pub, body, sig) {
		return Instruction{}, ErrSignature
	}
	switch {
	case in.Node != want.Node:
		return Instruction{}, fmt.Errorf("%w: for node %s, this is %s", ErrBinding, in.Node, want.Node)
	case in.BootID != want.BootID:
		return Instruction{}, fmt.Errorf("%w: for boot %s, this is boot %s", ErrBinding, in.BootID, want.BootID)
	case in.Nonce != want.Nonce:
		return Instruction{}, fmt.Errorf("%w: nonce %s is not the current poll's (a replay)", ErrBinding, in.Nonce)
	}
	return in, nil
}

// Validate checks every field is well-formed.
func (in Instruction) Validate() error {
	if in.Action != ActionRebootClean {
		return fmt.Errorf("instruction: action %q, want %s", clip(in.Action), ActionRebootClean)
	}
	if !ValidName(in.Node) {
		return fmt.Errorf("instruction: node %q is not a node name", clip(in.Node))
	}
	if !ValidBootID(in.BootID) {
		return fmt.Errorf("instruction: boot-id %q", clip(in.BootID))
	}
	if !ValidNonce(in.Nonce) {
		return fmt.Errorf("instruction: nonce %q: want %d hex digits", clip(in.Nonce), NonceLen)
	}
	if !ValidName(in.Generation) {
		return fmt.Errorf("instruction: generation %q", clip(in.Generation))
	}
	for _, f := range []struct {
		name string
		f    File
	}{{"kernel", in.Kernel}, {"initrd", in.Initrd}} {
		if err := checkURL(f.f.URL); err != nil {
			return fmt.Errorf("instruction: %s-url: %w", f.name, err)
		}
		if !validSHA256(f.f.SHA256) {
			return fmt.Errorf("instruction: %s-sha256 %q: want 64 lower-case hex digits", f.name, clip(f.f.SHA256))
		}
		if f.f.Size < 1 || f.f.Size > MaxFileSize {
			return fmt.Errorf("instruction: %s-size %d: want 1 to %d", f.name, f.f.Size, int64(MaxFileSize))
		}
	}
	if len(in.Cmdline) > MaxCmdline || !printable(in.Cmdline) {
		return fmt.Errorf("instruction: cmdline: want at most %d printable ASCII bytes", MaxCmdline)
	}
	return nil
}

func checkURL(s string) error {
	if len(s) > 1024 || !printable(s) || strings.Contains(s, " ") {
		return errors.New("want one printable word of at most 1024 bytes")
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an http(s) URL", clip(s))
	}
	return nil
}

// printable reports whether s is printable ASCII (space included).
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// ValidName accepts inventory names and generation ids: 1 to 64 letters,
// digits, '.', '_' and '-', starting with a letter or digit.
func ValidName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if !alnum && (i == 0 || c != '.' && c != '_' && c != '-') {
			return false
		}
	}
	return true
}

// ValidBootID accepts the kernel's boot_id (a UUID) and the agent's
// fallback: 1 to 64 letters, digits and '-'.
func ValidBootID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-') {
			return false
		}
	}
	return true
}

// NonceLen is the length of a poll's nonce in hex digits (128 bits).
const NonceLen = 32

// NewNonce returns a fresh random nonce.
func NewNonce() (string, error) {
	var b [NonceLen / 2]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

// ValidNonce reports whether s is NonceLen lower-case hex digits.
func ValidNonce(s string) bool { return len(s) == NonceLen && lowerHex(s) }

func validSHA256(s string) bool { return len(s) == 64 && lowerHex(s) }

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// EncodePublicKey is the kernel-argument form of the daemon's public key:
// base64url without padding (43 characters).
func EncodePublicKey(pub ed25519.PublicKey) string { return base64.RawURLEncoding.EncodeToString(pub) }

// DecodePublicKey reads EncodePublicKey's form.
func DecodePublicKey(s string) (ed25519.PublicKey, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%s: not a base64url ed25519 public key", KeyAgentKey)
	}
	return ed25519.PublicKey(b), nil
}

// clip cuts an echoed value to 40 bytes.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}
