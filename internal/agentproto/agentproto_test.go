package agentproto

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"net/url"
	"strings"
	"testing"
)

// testKey is a fixed key pair, so the encoded bytes are stable.
func testKey(seed byte) (ed25519.PublicKey, ed25519.PrivateKey) {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
	return priv.Public().(ed25519.PublicKey), priv
}

func sample() Instruction {
	return Instruction{
		Action: ActionRebootClean, Node: "n07", BootID: "0b8c4a8e-1f0d-4c55-9d8e-7f3b7f0e9a11",
		Nonce: strings.Repeat("ab", 16), Generation: "g20261203-0001",
		Kernel:  File{URL: "http://10.0.2.2:8080/images/live/g1/vmlinuz?node=n07&auth=k", SHA256: strings.Repeat("1f", 32), Size: 8247232},
		Initrd:  File{URL: "http://10.0.2.2:8080/images/live/g1/initrd?node=n07&auth=k", SHA256: strings.Repeat("2e", 32), Size: 1440000},
		Cmdline: "root=live:http://10.0.2.2:8080/images/live/g1/rootfs.squashfs netbootui.node=n07 console=ttyS0",
	}
}

func expectOf(in Instruction) Expect {
	return Expect{Node: in.Node, BootID: in.BootID, Nonce: in.Nonce}
}

func TestSignVerifyRoundTrip(t *testing.T) {
	pub, priv := testKey(1)
	in := sample()
	data, err := Sign(in, priv)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Verify(data, pub, expectOf(in))
	if err != nil {
		t.Fatalf("Verify: %v\n%s", err, data)
	}
	if got != in {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, in)
	}
	if !bytes.HasPrefix(data, []byte(magic+"\naction reboot-clean\nnode n07\n")) {
		t.Errorf("encoding starts:\n%s", data)
	}
}

// TestVerifyRefuses is the agent's side of the contract: a forged, tampered
// or replayed instruction is refused, each for its reason.
func TestVerifyRefuses(t *testing.T) {
	pub, priv := testKey(1)
	_, otherPriv := testKey(2)
	in := sample()
	good, err := Sign(in, priv)
	if err != nil {
		t.Fatal(err)
	}
	other := in
	other.Nonce = strings.Repeat("cd", 16)
	replayed, _ := Sign(other, priv) // a genuine instruction for an earlier poll
	forged, _ := Sign(in, otherPriv) // signed by someone else
	tampered := bytes.Replace(good, []byte("kernel-sha256 1f1f"), []byte("kernel-sha256 0f1f"), 1)
	tamperedCmd := bytes.Replace(good, []byte("console=ttyS0"), []byte("console=ttyS1"), 1)
	otherBoot := in
	otherBoot.BootID = "11111111-2222-3333-4444-555555555555"
	oldBoot, _ := Sign(otherBoot, priv)
	otherNode := in
	otherNode.Node = "n08"
	forN08, _ := Sign(otherNode, priv)

	cases := []struct {
		name string
		data []byte
		pub  ed25519.PublicKey
		want error
		text string
	}{
		{"forged (another key)", forged, pub, ErrSignature, ""},
		{"tampered sha256", tampered, pub, ErrSignature, ""},
		{"tampered cmdline", tamperedCmd, pub, ErrSignature, ""},
		{"no key", good, nil, ErrSignature, ""},
		{"replayed (earlier poll's nonce)", replayed, pub, ErrBinding, "a replay"},
		{"earlier boot", oldBoot, pub, ErrBinding, "for boot"},
		{"another node", forN08, pub, ErrBinding, "for node n08"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Verify(tc.data, tc.pub, expectOf(in))
			if !errors.Is(err, tc.want) || !strings.Contains(errString(err), tc.text) {
				t.Errorf("Verify = %v, want %v (%q)", err, tc.want, tc.text)
			}
		})
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestParseRejects covers malformed encodings: each is refused before any
// signature check, with an error naming what is wrong.
func TestParseRejects(t *testing.T) {
	_, priv := testKey(1)
	good, err := Sign(sample(), priv)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(good), "\n")
	lines = lines[:len(lines)-1] // the final "" after the last newline
	join := func(ls []string) []byte { return []byte(strings.Join(ls, "")) }
	replaceLine := func(i int, l string) []byte {
		c := append([]string(nil), lines...)
		c[i] = l
		return join(c)
	}
	swap := append([]string(nil), lines...)
	swap[2], swap[3] = swap[3], swap[2]
	cases := []struct {
		name, text string
		data       []byte
	}{
		{"empty", "truncated", nil},
		{"wrong magic", "first line", replaceLine(0, "netbootui-instruction 2\n")},
		{"lines out of order", "want node", join(swap)},
		{"missing signature", "truncated", join(lines[:len(lines)-1])},
		{"no final newline", "truncated", bytes.TrimSuffix(good, []byte("\n"))},
		{"trailing bytes", "after the signature", append(append([]byte(nil), good...), "x\n"...)},
		{"bad signature encoding", "signature is not", replaceLine(len(lines)-1, "signature !!\n")},
		{"short signature", "signature is not", replaceLine(len(lines)-1, "signature AAAA\n")},
		{"bad action", "action", replaceLine(1, "action wipe\n")},
		{"bad node", "node", replaceLine(2, "node ../etc\n")},
		{"bad boot id", "boot-id", replaceLine(3, "boot-id a b\n")},
		{"short nonce", "nonce", replaceLine(4, "nonce abcd\n")},
		{"upper-case nonce", "nonce", replaceLine(4, "nonce "+strings.Repeat("AB", 16)+"\n")},
		{"bad generation", "generation", replaceLine(5, "generation \n")},
		{"ftp kernel URL", "kernel-url", replaceLine(6, "kernel-url ftp://x/vmlinuz\n")},
		{"kernel URL with a space", "kernel-url", replaceLine(6, "kernel-url http://x/a b\n")},
		{"short sha256", "kernel-sha256", replaceLine(7, "kernel-sha256 abc\n")},
		{"zero size", "kernel-size", replaceLine(8, "kernel-size 0\n")},
		{"negative size", "kernel-size", replaceLine(8, "kernel-size -5\n")},
		{"size with a plus", "kernel-size", replaceLine(8, "kernel-size +5\n")},
		{"size too large", "kernel-size", replaceLine(8, "kernel-size 99999999999999\n")},
		{"cmdline with a control character", "cmdline", replaceLine(12, "cmdline a\tb\n")},
		{"cmdline too long", "cmdline", replaceLine(12, "cmdline "+strings.Repeat("x", MaxCmdline+1)+"\n")},
		{"too large", "bytes, more than", bytes.Repeat([]byte("x"), MaxInstruction+1)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, _, err := Parse(tc.data)
			if err == nil || !strings.Contains(err.Error(), tc.text) {
				t.Errorf("Parse = %v, want an error with %q", err, tc.text)
			}
		})
	}
}

func TestSignRefusesInvalid(t *testing.T) {
	_, priv := testKey(1)
	in := sample()
	in.Kernel.SHA256 = "nothex"
	if _, err := Sign(in, priv); err == nil || !strings.Contains(err.Error(), "kernel-sha256") {
		t.Errorf("Sign of a bad instruction = %v", err)
	}
}

func TestPublicKeyEncoding(t *testing.T) {
	pub, _ := testKey(3)
	s := EncodePublicKey(pub)
	if len(s) != 43 || strings.ContainsAny(s, "+/= ") {
		t.Errorf("EncodePublicKey = %q", s)
	}
	got, err := DecodePublicKey(s)
	if err != nil || !got.Equal(pub) {
		t.Errorf("DecodePublicKey = %v, %v", got, err)
	}
	for _, bad := range []string{"", "abc", s + "A", strings.Repeat("=", 44)} {
		if _, err := DecodePublicKey(bad); err == nil {
			t.Errorf("DecodePublicKey(%q) accepted", bad)
		}
	}
}

func TestNonce(t *testing.T) {
	a, err := NewNonce()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewNonce()
	if !ValidNonce(a) || !ValidNonce(b) || a == b {
		t.Errorf("NewNonce: %q %q", a, b)
	}
}

func TestPollForm(t *testing.T) {
	good := Poll{Node: "n07", Token: "0123456789abcdef", BootID: "b-1", Nonce: strings.Repeat("0f", 16), Generation: "g1"}
	if got, err := ParsePoll(good.Form()); err != nil || got != good {
		t.Fatalf("ParsePoll(Form) = %+v, %v", got, err)
	}
	cases := []struct {
		name, text string
		edit       func(url.Values)
	}{
		{"no node", "bad node", func(v url.Values) { v.Del("node") }},
		{"node twice", "bad node", func(v url.Values) { v.Add("node", "n08") }},
		{"no token", "bad token", func(v url.Values) { v.Del("token") }},
		{"token with a space", "bad token", func(v url.Values) { v.Set("token", "a b") }},
		{"no boot id", "bad boot_id", func(v url.Values) { v.Del("boot_id") }},
		{"bad nonce", "bad nonce", func(v url.Values) { v.Set("nonce", "xyz") }},
		{"bad generation", "bad generation", func(v url.Values) { v.Set("generation", "../g") }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := good.Form()
			tc.edit(v)
			if _, err := ParsePoll(v); err == nil || !strings.Contains(err.Error(), tc.text) {
				t.Errorf("ParsePoll = %v, want %q", err, tc.text)
			}
		})
	}
}

func TestReportForm(t *testing.T) {
	good := Report{Node: "n07", Token: "tok", BootID: "b-1", Nonce: strings.Repeat("0f", 16), Result: ResultRefused,
		Reason: "kernel sha256 mismatch"}
	if got, err := ParseReport(good.Form()); err != nil || got != good {
		t.Fatalf("ParseReport(Form) = %+v, %v", got, err)
	}
	loaded := good
	loaded.Result, loaded.Reason = ResultLoaded, ""
	if _, err := ParseReport(loaded.Form()); err != nil {
		t.Errorf("loaded report refused: %v", err)
	}
	cases := []struct {
		name, text string
		edit       func(url.Values)
	}{
		{"unknown result", "result", func(v url.Values) { v.Set("result", "done") }},
		{"refusal without reason", "needs its reason", func(v url.Values) { v.Del("reason") }},
		{"reason with a newline", "reason", func(v url.Values) { v.Set("reason", "a\nb") }},
		{"reason too long", "reason", func(v url.Values) { v.Set("reason", strings.Repeat("x", MaxReason+1)) }},
		{"bad nonce", "bad nonce", func(v url.Values) { v.Set("nonce", "") }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := good.Form()
			tc.edit(v)
			if _, err := ParseReport(v); err == nil || !strings.Contains(err.Error(), tc.text) {
				t.Errorf("ParseReport = %v, want %q", err, tc.text)
			}
		})
	}
}
