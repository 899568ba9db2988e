package pxe

import (
	"errors"
	"path"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCleanNameAccepts(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"pxelinux.0", "pxelinux.0"},
		{"/pxelinux.0", "pxelinux.0"},
		{"//pxelinux.0", "pxelinux.0"},
		{"/etc/passwd", "etc/passwd"}, // relative to the served root, never the host's
		{"pxelinux.cfg/01-52-54-00-12-34-56", "pxelinux.cfg/01-52-54-00-12-34-56"},
		{"a//b///c", "a/b/c"},
		{"./a/./b/.", "a/b"},
		{"a/b/", "a/b"},
		{"boot/52:54:00:12:34:56.ipxe", "boot/52:54:00:12:34:56.ipxe"},
		{"images/debian/0123abcd/vmlinuz", "images/debian/0123abcd/vmlinuz"},
		{"efi64/syslinux.efi", "efi64/syslinux.efi"},
		{"a..b", "a..b"},
		{"a.", "a."},
		{"ñandú/imagen", "ñandú/imagen"},
		{"Ａ", "Ａ"},             // fullwidth letter: a letter, harmless
		{"e\u0301", "e\u0301"}, // combining mark
		{strings.Repeat("a", MaxNameLen), strings.Repeat("a", MaxNameLen)},
	}
	for _, tt := range tests {
		got, err := CleanName(tt.in)
		if err != nil {
			t.Errorf("CleanName(%q): unexpected error %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("CleanName(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// cleanNameHostile are names no client may use; the TFTP tests send them over the
// wire too.
var cleanNameHostile = []struct {
	name, reason string
}{
	{"", "empty name"},
	{"/", "no file name left"},
	{"///", "no file name left"},
	{".", "no file name left"},
	{"./", "no file name left"},
	{"..", `".." element`},
	{"../etc/passwd", `".." element`},
	{"/../etc/passwd", `".." element`},
	{"../../../../../../../../etc/passwd", `".." element`},
	{"a/../../x", `".." element`},
	{"a/../b", `".." element`}, // cancels out, still refused
	{"a/b/..", `".." element`},
	{`..\..\x`, "backslash"},
	{`a\b`, "backslash"},
	{`C:\boot.ini`, "backslash"},
	{"C:/windows/win.ini", "drive-letter prefix"},
	{"./c:/x", "drive-letter prefix"},
	{"%2e%2e/x", "'%'"},
	{"%2e%2e%2fetc%2fpasswd", "'%'"},
	{"..%2f..%2fetc%2fpasswd", "'%'"},
	{"%00", "'%'"},
	{"100%", "'%'"},
	{"x\x00y", "NUL byte"},
	{"x\ny", "control character"},
	{"x\ry", "control character"},
	{"x\ty", "control character"},
	{"\x1b[2J", "control character"},
	{"x\x7f", "control character"},
	{"x\u0085y", "not a letter"}, // C1 control NEL
	{".hidden", "hidden element"},
	{"a/.git/config", "hidden element"},
	{".pxelinux.0.tmp-123", "hidden element"},
	{"passwd ", "space"},
	{" passwd", "space"},
	{"\xff\xfe", "invalid UTF-8"},
	{"a\xc0\xafb", "invalid UTF-8"},         // overlong '/'
	{"\xc0\xae\xc0\xae/x", "invalid UTF-8"}, // overlong '.'
	{"\uff0e\uff0e/x", "not a letter"},      // fullwidth full stops
	{"a\uff0fb", "not a letter"},            // fullwidth solidus
	{"a\u2215b", "not a letter"},            // division slash
	{"a\u2044b", "not a letter"},            // fraction slash
	{"\u2024\u2024/x", "not a letter"},      // one dot leader
	{"x\u202egpj.exe", "not a letter"},      // right-to-left override
	{"pxe\u200blinux.0", "not a letter"},
	{"\ufeffpxelinux.0", "not a letter"},
	{"a\u00a0b", "not a letter"}, // no-break space
	{"a\u3000b", "not a letter"}, // ideographic space
	{strings.Repeat("a", MaxNameLen+1), "longer than"},
	{strings.Repeat("a/", 200), "longer than"},
}

func TestCleanNameRefuses(t *testing.T) {
	if len(cleanNameHostile) < 30 {
		t.Fatalf("only %d hostile names", len(cleanNameHostile))
	}
	for _, tt := range cleanNameHostile {
		got, err := CleanName(tt.name)
		if err == nil {
			t.Errorf("CleanName(%q) = %q, want error containing %q", tt.name, got, tt.reason)
			continue
		}
		if got != "" {
			t.Errorf("CleanName(%q) returned %q alongside error", tt.name, got)
		}
		if !strings.Contains(err.Error(), tt.reason) {
			t.Errorf("CleanName(%q) error %q does not say %q", tt.name, err, tt.reason)
		}
		if !errors.Is(err, ErrAccessDenied) {
			t.Errorf("CleanName(%q) error %v is not ErrAccessDenied", tt.name, err)
		}
		var ne *NameError
		if !errors.As(err, &ne) || ne.Name != tt.name {
			t.Errorf("CleanName(%q) error %#v does not carry the name", tt.name, err)
		}
	}
}

func FuzzCleanName(f *testing.F) {
	for _, tt := range cleanNameHostile {
		f.Add(tt.name)
	}
	for _, s := range []string{"pxelinux.0", "/a//b/./c/", "a/b/../c", "é/x", "C:x", "./A:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, err := CleanName(in)
		if err != nil {
			if out != "" {
				t.Fatalf("error with non-empty result %q", out)
			}
			if !errors.Is(err, ErrAccessDenied) {
				t.Fatalf("error %v is not ErrAccessDenied", err)
			}
			return
		}
		if out == "" || strings.HasPrefix(out, "/") {
			t.Fatalf("CleanName(%q) = %q: empty or absolute", in, out)
		}
		if strings.ContainsAny(out, "\\\x00%") {
			t.Fatalf("CleanName(%q) = %q: contains backslash, NUL or %%", in, out)
		}
		if path.Clean(out) != out {
			t.Fatalf("CleanName(%q) = %q: path.Clean gives %q", in, out, path.Clean(out))
		}
		if !utf8.ValidString(out) || len(out) > MaxNameLen {
			t.Fatalf("CleanName(%q) = %q: invalid UTF-8 or too long", in, out)
		}
		for e := range strings.SplitSeq(out, "/") {
			if e == "" || e == "." || e == ".." || e[0] == '.' {
				t.Fatalf("CleanName(%q) = %q: bad element %q", in, out, e)
			}
		}
		// Idempotent: a clean name stays as it is.
		if again, err := CleanName(out); err != nil || again != out {
			t.Fatalf("CleanName(%q) = %q, but CleanName(%q) = %q, %v", in, out, out, again, err)
		}
	})
}
