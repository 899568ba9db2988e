package inventory

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"
)

// EnvPasswordPrefix starts the name of the environment variable that overrides
// one password reference: NETBOOTUI_BMC_PASSWORD_<REF>, with REF upper-cased
// and every character other than a letter or digit replaced by '_'.
const EnvPasswordPrefix = "NETBOOTUI_BMC_PASSWORD_"

// EnvPasswordVar returns the environment variable that overrides ref.
func EnvPasswordVar(ref string) string {
	var b strings.Builder
	b.WriteString(EnvPasswordPrefix)
	for _, r := range strings.ToUpper(ref) {
		if (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// maxSecretsSize bounds the secrets file.
const maxSecretsSize = 1 << 20

// redacted is what every printed form of Secrets shows.
const redacted = "[redacted]"

// Secrets holds BMC passwords by reference name. None of its printed forms
// (fmt verbs, JSON, slog) shows a password: they all print "[redacted]".
// A nil *Secrets is valid and knows only environment overrides.
type Secrets struct {
	// The passwords sit inside a closure: fmt prints a func as an address,
	// even through reflection on an unexported field of another struct, where
	// Secrets' own Format is not called.
	lookup func(ref string) (string, bool)
	n      int
}

func newSecrets(m map[string]string) *Secrets {
	return &Secrets{
		lookup: func(ref string) (string, bool) { v, ok := m[ref]; return v, ok },
		n:      len(m),
	}
}

// LoadSecrets reads a secrets file:
//
//	bmc_passwords:
//	  compute-bmc: "s3cret"
//
// It refuses a file that its group or others may read or write (it must be
// mode 0600 or stricter), and any malformed content, with FILE:LINE:COL.
func LoadSecrets(path string) (*Secrets, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("inventory: secrets: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("inventory: secrets: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("inventory: secrets: %s is not a regular file", path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%s: mode %04o, must be 0600 (chmod 600 %s)", path, perm, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxSecretsSize+1))
	if err != nil {
		return nil, fmt.Errorf("inventory: secrets: %w", err)
	}
	if len(data) > maxSecretsSize {
		return nil, fmt.Errorf("inventory: secrets: %s is larger than %d bytes", path, maxSecretsSize)
	}
	return parseSecrets(path, data)
}

func parseSecrets(path string, data []byte) (*Secrets, error) {
	p := &parser{file: path, secret: true}
	m := map[string]string{}
	if !p.checkText(data) {
		return nil, sortErrors(p.errs)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		p.yamlError(data, err)
		return nil, sortErrors(p.errs)
	}
	if len(doc.Content) == 0 {
		return newSecrets(m), nil
	}
	p.mapping(doc.Content[0], "the secrets file", []string{"bmc_passwords"}, func(_ string, _, v *yaml.Node) {
		p.mapping(v, "bmc_passwords", nil, func(ref string, _, v *yaml.Node) {
			if s, ok := p.str(v, "bmc_passwords."+ref); ok {
				m[ref] = s
			} else if isNull(v) {
				p.errorf(v, "bmc_passwords.%s has no value", ref)
			}
		})
	})
	if len(p.errs) > 0 {
		return nil, sortErrors(p.errs)
	}
	return newSecrets(m), nil
}

// Password returns the password for ref: the environment override when set
// (even empty), else the secrets file's entry.
func (s *Secrets) Password(ref string) (string, bool) {
	if v, ok := os.LookupEnv(EnvPasswordVar(ref)); ok {
		return v, true
	}
	if s == nil || s.lookup == nil {
		return "", false
	}
	return s.lookup(ref)
}

// Len returns how many passwords the file holds.
func (s *Secrets) Len() int {
	if s == nil {
		return 0
	}
	return s.n
}

// String returns a redacted description.
func (s Secrets) String() string { return "inventory.Secrets" + redacted }

// GoString returns a redacted description for %#v.
func (s Secrets) GoString() string { return "inventory.Secrets{" + redacted + "}" }

// Format prints a redacted description for every fmt verb.
func (s Secrets) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		fmt.Fprint(f, s.GoString())
		return
	}
	fmt.Fprint(f, s.String())
}

// MarshalJSON encodes Secrets as the string "[redacted]".
func (s Secrets) MarshalJSON() ([]byte, error) { return json.Marshal(redacted) }

// MarshalYAML encodes Secrets as the string "[redacted]".
func (s Secrets) MarshalYAML() (any, error) { return redacted, nil }

// LogValue makes slog print Secrets redacted.
func (s Secrets) LogValue() slog.Value { return slog.StringValue(redacted) }
