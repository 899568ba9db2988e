package nodeagent

import (
	"strings"
	"testing"
)

// FuzzUnquote: no text panics the reader of init.sh's env file, and a
// value quoted as init.sh quotes it (single quotes; for a quote inside, the
// quoted text ends, \' follows and quoting starts again) reads back
// unchanged, alone and as a line of the file.
func FuzzUnquote(f *testing.F) {
	for _, s := range []string{"a b", "it's", "plain", "'open", "$(x)", `"dq"`, `\'`, "''''"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		unquote(s) // must not panic
		quoted := "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
		if got, ok := unquote(quoted); !ok || got != s {
			t.Fatalf("unquote(%q) = %q, %v; want %q", quoted, got, ok, s)
		}
		if strings.ContainsAny(s, "\n\r") {
			return // init.sh's values are one line each
		}
		if env := parseEnv([]byte("NETBOOTUI_X=" + quoted + "\n")); env["NETBOOTUI_X"] != s {
			t.Fatalf("parseEnv of %q: %q", quoted, env["NETBOOTUI_X"])
		}
	})
}
