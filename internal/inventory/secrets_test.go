package inventory

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const secretPW = "hunter2-very-secret"

func writeSecrets(t *testing.T, dir string, mode os.FileMode, body string) string {
	t.Helper()
	p := filepath.Join(dir, "secrets.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadSecretsMode(t *testing.T) {
	for _, tc := range []struct {
		mode os.FileMode
		ok   bool
	}{
		{0o600, true}, {0o400, true}, {0o644, false}, {0o640, false}, {0o604, false}, {0o660, false}, {0o610, false},
	} {
		t.Run(fmt.Sprintf("%04o", tc.mode), func(t *testing.T) {
			p := writeSecrets(t, t.TempDir(), tc.mode, "bmc_passwords:\n  a: "+secretPW+"\n")
			s, err := LoadSecrets(p)
			if tc.ok {
				if err != nil {
					t.Fatal(err)
				}
				if pw, ok := s.Password("a"); !ok || pw != secretPW {
					t.Errorf("Password(a) = %q, %v", pw, ok)
				}
				return
			}
			want := fmt.Sprintf("%s: mode %04o, must be 0600 (chmod 600 %s)", p, tc.mode, p)
			if err == nil || err.Error() != want {
				t.Errorf("LoadSecrets = %v, want %s", err, want)
			}
		})
	}
}

func TestLoadSecretsErrors(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{"bmc_password:\n  a: x\n", `:1:1: unknown key "bmc_password" in the secrets file (allowed: bmc_passwords)`},
		{"bmc_passwords:\n  a: [x]\n", `:2:6: bmc_passwords.a must be a string, got a list`},
		{"bmc_passwords:\n  a:\n", `:2:5: bmc_passwords.a has no value`},
		{"bmc_passwords: [a]\n", `:1:16: bmc_passwords must be a mapping, got a list`},
		{"bmc_passwords:\n  a: \"x\n", `:2:3: YAML syntax error: found unexpected end of stream`},
	} {
		p := writeSecrets(t, t.TempDir(), 0o600, tc.body)
		_, err := LoadSecrets(p)
		if err == nil || err.Error() != p+tc.want {
			t.Errorf("LoadSecrets(%q) = %v, want %s", tc.body, err, p+tc.want)
		}
	}
	if _, err := LoadSecrets(filepath.Join(t.TempDir(), "none.yaml")); err == nil {
		t.Error("missing file accepted")
	}
	s, err := LoadSecrets(writeSecrets(t, t.TempDir(), 0o600, ""))
	if err != nil || s.Len() != 0 {
		t.Errorf("empty secrets file: %v, %d", err, s.Len())
	}
}

func TestSecretsEnvOverride(t *testing.T) {
	if got := EnvPasswordVar("compute-bmc.v2"); got != "NETBOOTUI_BMC_PASSWORD_COMPUTE_BMC_V2" {
		t.Errorf("EnvPasswordVar = %s", got)
	}
	p := writeSecrets(t, t.TempDir(), 0o600, "bmc_passwords:\n  compute-bmc: fromfile\n  other: o\n")
	s, err := LoadSecrets(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("NETBOOTUI_BMC_PASSWORD_COMPUTE_BMC", "fromenv")
	t.Setenv("NETBOOTUI_BMC_PASSWORD_ONLY_ENV", "")
	for ref, want := range map[string]string{"compute-bmc": "fromenv", "other": "o", "only-env": ""} {
		if got, ok := s.Password(ref); !ok || got != want {
			t.Errorf("Password(%s) = %q, %v; want %q", ref, got, ok, want)
		}
	}
	if _, ok := s.Password("missing"); ok {
		t.Error("Password(missing) found")
	}
	var nilS *Secrets
	if got, ok := nilS.Password("compute-bmc"); !ok || got != "fromenv" {
		t.Errorf("nil Secrets: %q %v", got, ok)
	}
}

func TestSecretsRedaction(t *testing.T) {
	p := writeSecrets(t, t.TempDir(), 0o600, "bmc_passwords:\n  a: "+secretPW+"\n")
	s, err := LoadSecrets(p)
	if err != nil {
		t.Fatal(err)
	}
	type holder struct {
		S       *Secrets
		V       Secrets
		private Secrets
	}
	h := holder{S: s, V: *s, private: *s}
	var outs []string
	for _, f := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
		outs = append(outs, fmt.Sprintf(f, s), fmt.Sprintf(f, *s), fmt.Sprintf(f, h), fmt.Sprintf(f, &h))
	}
	outs = append(outs, fmt.Sprint(s), fmt.Sprintln(*s), s.String(), s.GoString())
	for _, v := range []any{s, *s, h} {
		j, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		outs = append(outs, string(j))
	}
	var logb strings.Builder
	slog.New(slog.NewTextHandler(&logb, nil)).Info("x", "secrets", s, "v", *s)
	slog.New(slog.NewJSONHandler(&logb, nil)).Info("x", "secrets", s)
	outs = append(outs, logb.String())
	for _, o := range outs {
		if strings.Contains(o, secretPW) || strings.Contains(o, "hunter") {
			t.Errorf("password leaked: %s", o)
		}
	}
	if !strings.Contains(fmt.Sprintf("%+v", s), "redacted") || !strings.Contains(fmt.Sprintf("%#v", s), "redacted") {
		t.Errorf("not marked redacted: %+v / %#v", s, s)
	}
}

func TestPasswordReferences(t *testing.T) {
	dir := t.TempDir()
	inv := filepath.Join(dir, "nodes.yaml")
	src := `settings:
  secrets: secrets.yaml
groups:
  g:
    bmc: {password: known}
nodes:
  - name: a
    group: g
    nics: [{mac: "02:00:00:00:00:01"}]
    bmc: {host: 10.0.0.1, password: nope}
`
	// No secrets file: references are not checked.
	if _, err := Parse(inv, []byte(src)); err != nil {
		t.Fatalf("without a secrets file: %v", err)
	}
	// A secrets file with a bad mode is not readable as secrets: not checked.
	writeSecrets(t, dir, 0o644, "bmc_passwords:\n  known: x\n")
	if _, err := Parse(inv, []byte(src)); err != nil {
		t.Fatalf("with an unloadable secrets file: %v", err)
	}
	writeSecrets(t, dir, 0o600, "bmc_passwords:\n  known: x\n")
	_, err := Parse(inv, []byte(src))
	want := inv + `:10:37: unknown password reference "nope": not in secrets.yaml bmc_passwords and NETBOOTUI_BMC_PASSWORD_NOPE is not set`
	if err == nil || err.Error() != want {
		t.Fatalf("Parse = %v\nwant %s", err, want)
	}
	t.Setenv("NETBOOTUI_BMC_PASSWORD_NOPE", "y")
	if _, err := Parse(inv, []byte(src)); err != nil {
		t.Fatalf("with the environment override: %v", err)
	}
}
