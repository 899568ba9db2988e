package inventory

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// A secrets file whose shape is wrong must not quote what it holds: the
// error text reaches audit.log, state.db, events and the CLI.
func TestSecretsErrorsNeverQuoteAValue(t *testing.T) {
	const pw = "S3cret-Pa55word"
	for _, body := range []string{
		"bmc_passwords: \"" + pw + "\"\n",
		"bmc_passwords: " + pw + "\n",
		"bmc_passwords: '" + pw + "'\n",
		"bmc_passwords: 314159265358979\n",
		"bmc_passwords: !!binary " + "UzNjcmV0\n",
		"bmc_passwords:\n  - " + pw + "\n",
		"bmc_passwords:\n  a: !!binary UzNjcmV0\n",
		pw + "\n",
	} {
		t.Run(body, func(t *testing.T) {
			p := writeSecrets(t, t.TempDir(), 0o600, body)
			_, err := LoadSecrets(p)
			if err == nil {
				t.Fatal("LoadSecrets accepted a malformed file")
			}
			msg := strings.ReplaceAll(err.Error(), p, "FILE") // the test's folder is named after it
			for _, leak := range []string{pw, "314159265358979", "UzNjcmV0"} {
				if strings.Contains(msg, leak) {
					t.Errorf("error quotes the value: %v", err)
				}
			}
			var list ErrorList
			if !errors.As(err, &list) || !strings.HasPrefix(err.Error(), p+":1:") && !strings.HasPrefix(err.Error(), p+":2:") {
				t.Errorf("error %q is not FILE:LINE:COL", err)
			}
		})
	}
}

// hardInv writes an inventory (and a secrets file) into a folder and loads it.
func hardInv(t *testing.T, inv, secrets string) error {
	t.Helper()
	dir := t.TempDir()
	if secrets != "" {
		writeSecrets(t, dir, 0o600, secrets)
		inv = "settings: {secrets: secrets.yaml}\n" + inv
	}
	p := filepath.Join(dir, "nodes.yaml")
	if err := os.WriteFile(p, []byte(inv), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(p)
	return err
}

func TestValidateBMCRules(t *testing.T) {
	const head = "images:\n  compute: {}\nnodes:\n"
	node := func(name, mac, bmc string) string {
		return fmt.Sprintf("  - name: %s\n    image: compute\n    nics: [{mac: %q}]\n    bmc: %s\n", name, mac, bmc)
	}
	for _, tc := range []struct {
		name, inv, secrets, env, want string
	}{
		{name: "two nodes one BMC",
			inv:  head + node("a", "52:54:00:00:00:01", "{host: 10.2.0.1}") + node("b", "52:54:00:00:00:02", "{host: 10.2.0.1, port: 623}"),
			want: `:11:17: duplicate BMC 10.2.0.1:623: node a has it too (`},
		{name: "range against a node on its host name",
			inv:  head + node("n[1-3]", "52:54:00:00:00:01", "{host: chassis1}") + node("x", "52:54:00:00:01:01", "{host: chassis1}"),
			want: `:11:17: duplicate BMC chassis1:623: node n1 has it too (`},
		{name: "two ranges overlapping",
			inv:  head + node("a[1-3]", "52:54:00:00:00:01", "{host: 10.2.0.1}") + node("b[1-3]", "52:54:00:00:01:01", "{host: 10.2.0.3}"),
			want: `:11:17: duplicate BMC 10.2.0.3:623: node a3 has it too (`},
		{name: "range keeps a host name", inv: head + node("n[1-3]", "52:54:00:00:00:01", "{host: chassis1}")},
		{name: "same host other port", inv: head + node("a", "52:54:00:00:00:01", "{host: 10.2.0.1}") + node("b", "52:54:00:00:00:02", "{host: 10.2.0.1, port: 624}")},
		{name: "range of IPv4 hosts", inv: head + node("n[1-3]", "52:54:00:00:00:01", "{host: 10.2.0.1}")},
		{name: "password of 21 bytes",
			inv: head + node("a", "52:54:00:00:00:01", "{host: 10.2.0.1, password: pw}"), secrets: "bmc_passwords:\n  pw: " + strings.Repeat("x", 21) + "\n",
			want: `:8:37: password "pw" (from secrets.yaml or NETBOOTUI_BMC_PASSWORD_PW): 21 bytes, longer than the 20 bytes IPMI allows`},
		{name: "password of 20 bytes",
			inv: head + node("a", "52:54:00:00:00:01", "{host: 10.2.0.1, password: pw}"), secrets: "bmc_passwords:\n  pw: " + strings.Repeat("x", 20) + "\n"},
		{name: "long password from the environment",
			inv: head + node("a", "52:54:00:00:00:01", "{host: 10.2.0.1, password: pw}"), secrets: "bmc_passwords:\n  pw: short\n", env: strings.Repeat("y", 40),
			want: `: 40 bytes, longer than the 20 bytes IPMI allows`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env != "" {
				t.Setenv(EnvPasswordVar("pw"), tc.env)
			}
			err := hardInv(t, tc.inv, tc.secrets)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "xxxxxxxxxxxxxxxxxxxxx") || strings.Contains(err.Error(), "yyyy") {
				t.Errorf("error quotes the password: %v", err)
			}
			if n := strings.Count(err.Error(), "\n") + 1; n != 1 {
				t.Errorf("%d errors, want 1:\n%v", n, err)
			}
		})
	}
}

// One mistake repeated by many entries is one error, not a screenful
// (200 nodes naming a missing group printed 101 lines).
func TestOneMistakeOneError(t *testing.T) {
	for _, tc := range []struct{ name, ref, want string }{
		{"group", "group: missing", `:4:23: node n0: unknown group "missing" (groups: none defined) (and 199 more entries)`},
		{"image", "image: nope", `:4:23: node n0: unknown image "nope" (images: compute) (and 199 more entries)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			b.WriteString("images:\n  compute: {}\nnodes:\n")
			for i := range 200 {
				fmt.Fprintf(&b, "  - {name: n%d, %s, nics: [{mac: '52:54:00:00:%02x:%02x'}]}\n", i, tc.ref, i/256, i%256)
			}
			_, err := Parse("nodes.yaml", []byte(b.String()))
			if err == nil {
				t.Fatal("accepted")
			}
			if got := err.Error(); got != "nodes.yaml"+tc.want {
				t.Errorf("got %d lines:\n%.400s\nwant nodes.yaml%s", strings.Count(got, "\n")+1, got, tc.want)
			}
		})
	}
}

// A value of the wrong type is reported once, wherever it is.
func TestWrongTypeReportedOnce(t *testing.T) {
	for _, value := range []string{"!!binary aGVsbG8=", "[a]", "{a: b}", "!!bool true"} {
		for _, field := range []string{"name", "image", "kernel_args", "group", "ip"} {
			t.Run(field+" "+value, func(t *testing.T) {
				fields := map[string]string{"name": "n1", "image": "compute"}
				fields[field] = value
				var b strings.Builder
				b.WriteString("images:\n  compute: {}\nnodes:\n")
				fmt.Fprintf(&b, "  - name: %s\n    image: %s\n", fields["name"], fields["image"])
				if field != "name" && field != "image" {
					fmt.Fprintf(&b, "    %s: %s\n", field, value)
				}
				b.WriteString("    nics: [{mac: '52:54:00:00:00:01'}]\n")
				_, err := Parse("nodes.yaml", []byte(b.String()))
				if err == nil {
					t.Fatal("accepted")
				}
				if n := strings.Count(err.Error(), "\n") + 1; n != 1 {
					t.Errorf("%d errors, want 1:\n%v", n, err)
				}
			})
		}
	}
}

// bigInventory is an inventory of about size bytes; bad ends it with a
// syntax error on its last line.
func bigInventory(size int, bad bool) []byte {
	var b bytes.Buffer
	b.WriteString("images:\n  compute: {}\nnodes:\n")
	for i := 0; b.Len() < size; i++ {
		fmt.Fprintf(&b, "  - name: n%d\n    image: compute\n    nics: [{mac: '52:%02x:%02x:%02x:%02x:01'}]\n", i, byte(i>>24), byte(i>>16), byte(i>>8), byte(i))
	}
	if bad {
		b.WriteString("  - name: bad\n    nics: [{mac: '52:54:00:00:01:01'\n")
	}
	return b.Bytes()
}

// A 50 MB file with an error at its end took 12 s and 468 MB: the file is
// refused by its size before anything parses it.
func TestLoadRefusesHugeFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "nodes.yaml")
	if err := os.WriteFile(p, bigInventory(50<<20, true), 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	var allocated uint64
	go func() {
		var a, b runtime.MemStats
		runtime.ReadMemStats(&a)
		_, err := Load(p)
		runtime.ReadMemStats(&b)
		allocated = b.TotalAlloc - a.TotalAlloc
		done <- err
	}()
	select {
	case err := <-done:
		want := p + ":1:1: the file is "
		if err == nil || !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), "larger than the 16 MiB an inventory may be") {
			t.Fatalf("Load = %v, want %s… larger than the 16 MiB…", err, want)
		}
		// Refused before it is read: what it costs does not grow with
		// the file (the cost is measured in bytes allocated, which a
		// loaded machine does not change, not in time).
		if allocated > 1<<20 {
			t.Errorf("refusing allocated %d KiB, want the file left unread", allocated>>10)
		}
	case <-time.After(time.Minute):
		t.Fatal("Load of a 50 MB inventory still running after a minute")
	}
	if _, err := Parse(p, bigInventory(MaxFileSize+1, false)); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("Parse of %d bytes = %v", MaxFileSize+1, err)
	}
}

// Locating a syntax error at the end of a large file re-parses a few
// prefixes, not one per halving of the file: it costs a small multiple of
// one parse (measured in bytes allocated, which does not depend on load).
func TestSyntaxErrorSearchIsCheap(t *testing.T) {
	good, bad := bigInventory(2<<20, false), bigInventory(2<<20, true)
	alloc := func(data []byte) uint64 {
		var a, b runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&a)
		Parse("nodes.yaml", data)
		runtime.ReadMemStats(&b)
		return b.TotalAlloc - a.TotalAlloc
	}
	one := alloc(good)
	_, err := Parse("nodes.yaml", bad)
	if err == nil || !strings.Contains(err.Error(), "YAML syntax error") {
		t.Fatalf("Parse = %v", err)
	}
	lines := bytes.Count(bad, []byte("\n"))
	if want := fmt.Sprintf("nodes.yaml:%d:", lines); !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error at %v, want line %d", err, lines)
	}
	got := alloc(bad)
	t.Logf("one parse %d MB; a syntax error at the end %d MB (%.1f parses)", one>>20, got>>20, float64(got)/float64(one))
	if got > 6*one {
		t.Errorf("a syntax error at the end costs %d MB, %.1f parses (want at most 6)", got>>20, float64(got)/float64(one))
	}
}
