package pxe

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestValidateIPXE(t *testing.T) {
	cases := []struct {
		name, text string
		want       string // substring of the message; "" = valid
		line, col  int
	}{
		{"minimal", "#!ipxe\nchain http://h/x\n", "", 0, 0},
		{"crlf", "#!ipxe\r\necho hi\r\nexit\r\n", "", 0, 0},
		{"labels and chaining", "#!ipxe\n:start\ndhcp || goto start\nkernel http://h/k a=b && initrd http://h/i ; boot\n", "", 0, 0},
		{"label with command", "#!ipxe\n:retry sleep 1\ngoto retry\n", "", 0, 0},
		{"comments", "#!ipxe\n# a comment\necho hi # trailing\n  #indented\n", "", 0, 0},
		{"settings", "#!ipxe\nset base http://h\nchain ${base}/x.ipxe\ngoto ${target}\n", "", 0, 0},
		{"menu", "#!ipxe\nmenu Boot\nitem a A\nitem --gap x\nchoose sel && goto ${sel}\n:a\nexit\n", "", 0, 0},
		{"continuation", "#!ipxe\nkernel http://h/k \\\n  console=ttyS0 \\\n  quiet\nboot\n", "", 0, 0},
		{"continuation joins word", "#!ipxe\nker\\\nnel http://h/k\n", "", 0, 0},
		{"no trailing newline", "#!ipxe\nexit", "", 0, 0},
		{"no magic", "echo hi\n", `first line must be "#!ipxe"`, 1, 1},
		{"gpxe magic", "#!gpxe\necho hi\n", `first line must be "#!ipxe"`, 1, 1},
		{"magic glued", "#!ipxefoo\necho hi\n", `first line must be "#!ipxe"`, 1, 1},
		{"empty", "", `first line must be "#!ipxe"`, 1, 1},
		{"only magic", "#!ipxe\n", "script has no commands", 1, 1},
		{"only comments", "#!ipxe\n# nothing\n\n", "script has no commands", 1, 1},
		{"unknown command", "#!ipxe\necho hi\nkernl http://h/k\n", `unknown command "kernl" (did you mean "kernel"?)`, 3, 1},
		{"unknown indented", "#!ipxe\n   chian x\n", `unknown command "chian" (did you mean "chain"?)`, 2, 4},
		{"unknown no suggestion", "#!ipxe\nfrobnicate\n", `unknown command "frobnicate"`, 2, 1},
		{"case matters", "#!ipxe\nKernel http://h/k\n", `unknown command "Kernel" (did you mean "kernel"?)`, 2, 1},
		{"unknown after ||", "#!ipxe\ndhcp || shel\n", `unknown command "shel" (did you mean "shell"?)`, 2, 9},
		{"unknown after label", "#!ipxe\n:x ech hi\n", `unknown command "ech" (did you mean "echo"?)`, 2, 4},
		{"goto missing label", "#!ipxe\n:retry\ngoto rerty\n", `goto target "rerty" is not a label in this script (did you mean "retry"?)`, 3, 6},
		{"goto no arg", "#!ipxe\ngoto\n", "goto takes one label", 2, 1},
		{"empty label", "#!ipxe\n:\necho\n", "empty label", 2, 1},
		{"duplicate label", "#!ipxe\n:a\n:a\ngoto a\n", `label "a" already defined on line 2`, 3, 1},
		{"dangling ||", "#!ipxe\nchain x ||\n", `no command after "||"`, 2, 9},
		{"leading &&", "#!ipxe\n&& echo\n", `no command before "&&"`, 2, 1},
		{"double separator", "#!ipxe\necho a ; ; echo b\n", `no command after ";"`, 2, 8},
		{"sleep not number", "#!ipxe\nsleep five\n", `sleep: "five" is not a number`, 2, 7},
		{"kernel without url", "#!ipxe\nkernel --name k\n", "kernel needs an image URL", 2, 1},
		{"iseq one value", "#!ipxe\niseq a\n", "iseq takes two values", 2, 1},
		{"control char", "#!ipxe\necho \x07bell\n", "control character U+0007", 2, 6},
		{"bare CR", "#!ipxe\necho a\rshell\n", "control character U+000D", 2, 7},
		{"invalid utf8", "#!ipxe\necho é\xff\n", "invalid UTF-8", 2, 7},
		{"unicode columns", "#!ipxe\necho ééé ; chian\n", `unknown command "chian"`, 2, 12},
		{"first error wins", "#!ipxe\ngoto nowhere\nkernl\n", `goto target "nowhere"`, 2, 6},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			checkValidation(t, FormatIPXE, ValidateIPXE(c.text), c.want, c.line, c.col)
		})
	}
}

func TestValidatePxelinux(t *testing.T) {
	const ok = "DEFAULT linux\nLABEL linux\n  KERNEL vmlinuz\n  APPEND quiet\n"
	cases := []struct {
		name, text string
		want       string
		line, col  int
	}{
		{"minimal", ok, "", 0, 0},
		{"lower case and comments", "# c\ndefault a\nprompt 0\ntimeout 10\n\nlabel a\n  linux vmlinuz\n  initrd initrd.img\n  append x\n", "", 0, 0},
		{"menu", "UI menu.c32\nMENU TITLE Boot\nLABEL a\n  MENU LABEL A\n  MENU DEFAULT\n  KERNEL k\n  TEXT HELP\n  free text, KERNL is fine here\n  ENDTEXT\nLABEL b\n  LOCALBOOT 0\n", "", 0, 0},
		{"localboot -1", "DEFAULT l\nLABEL k\n KERNEL k\nLABEL l\n LOCALBOOT -1\n", "", 0, 0},
		{"globals", "SERIAL 0 115200\nCONSOLE 1\nAPPEND console=ttyS0\nIPAPPEND 2\nSAY hello\nF1 help.txt\nDEFAULT a\nNOESCAPE 1\nALLOWOPTIONS 0\nLABEL a\n COM32 x.c32\nLABEL b\n KERNEL k\n SYSAPPEND 3\n", "", 0, 0},
		{"crlf", "DEFAULT a\r\nLABEL a\r\n KERNEL k\r\n", "", 0, 0},
		{"unknown directive", "DEFAULT a\nLABEL a\n  KERNL vmlinuz\n", `unknown directive "KERNL" (did you mean "KERNEL"?)`, 3, 3},
		{"unknown no suggestion", "DEFAULT a\nXYZZY 1\nLABEL a\nKERNEL k\n", `unknown directive "XYZZY"`, 2, 1},
		{"default missing label", "DEFAULT lnux\nLABEL linux\n KERNEL k\n", `DEFAULT "lnux" is not a LABEL in this config (did you mean "linux"?)`, 1, 9},
		{"default case sensitive", "DEFAULT Linux\nLABEL linux\n KERNEL k\n", `DEFAULT "Linux" is not a LABEL in this config (did you mean "linux"?)`, 1, 9},
		{"no default", "LABEL a\n KERNEL k\n", "no DEFAULT", 1, 1},
		{"no label", "DEFAULT a\nSAY hi\n", "no LABEL", 1, 1},
		{"empty", "", "no LABEL", 1, 1},
		{"label without kernel", "DEFAULT a\nLABEL a\n KERNEL k\nLABEL b\n APPEND x\n", `label "b" has no KERNEL`, 4, 7},
		{"no kernel at all", "DEFAULT a\nLABEL a\n LOCALBOOT 0\n", "no KERNEL or LINUX line", 1, 1},
		{"kernel outside label", "KERNEL k\nDEFAULT a\nLABEL a\n KERNEL k\n", "KERNEL outside a LABEL", 1, 1},
		{"duplicate label", "DEFAULT a\nLABEL a\n KERNEL k\nLABEL a\n KERNEL j\n", `label "a" already defined on line 2`, 4, 7},
		{"timeout not number", "DEFAULT a\nTIMEOUT soon\nLABEL a\n KERNEL k\n", `TIMEOUT takes a number, not "soon"`, 2, 9},
		{"negative prompt", "DEFAULT a\nPROMPT -1\nLABEL a\n KERNEL k\n", "PROMPT takes a number", 2, 8},
		{"missing arg", "DEFAULT a\nLABEL a\n KERNEL\n", "KERNEL needs an argument", 3, 2},
		{"missing number", "DEFAULT a\nTIMEOUT\nLABEL a\n KERNEL k\n", "TIMEOUT needs a number", 2, 1},
		{"unknown menu keyword", "DEFAULT a\nMENU TITEL x\nLABEL a\n KERNEL k\n", `unknown MENU keyword "TITEL" (did you mean "TITLE"?)`, 2, 6},
		{"text without help", "DEFAULT a\nLABEL a\n KERNEL k\n TEXT foo\n", "TEXT must be followed by HELP", 4, 2},
		{"unterminated text", "DEFAULT a\nLABEL a\n KERNEL k\n TEXT HELP\n  words\n", "TEXT HELP without ENDTEXT", 4, 2},
		{"stray endtext", "DEFAULT a\nLABEL a\n KERNEL k\nENDTEXT\n", "ENDTEXT without TEXT HELP", 4, 1},
		{"control char", "DEFAULT a\nLABEL a\n KERNEL k\n APPEND x\x00\n", "control character U+0000", 4, 10},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			checkValidation(t, FormatPxelinux, ValidatePxelinux(c.text), c.want, c.line, c.col)
		})
	}
}

func checkValidation(t *testing.T, format string, err error, want string, line, col int) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %v (%T), want *ValidationError %q", err, err, want)
	}
	if ve.Format != format || !strings.Contains(ve.Msg, want) || ve.Line != line || ve.Col != col {
		t.Errorf("got %v\nwant %s:%d:%d: ...%s...", err, format, line, col, want)
	}
	if !strings.HasPrefix(err.Error(), format+":") {
		t.Errorf("message %q does not start with %s:", err, format)
	}
}

// TestValidateFiles validates the sample overrides in testdata/validate:
// NAME.ipxe / NAME.pxelinux must be valid when NAME starts with "ok-", and
// must fail with the message in NAME.err (FORMAT:LINE:COL: MSG) otherwise.
func TestValidateFiles(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "validate", "*.*"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range files {
		ext := filepath.Ext(f)
		if ext != ".ipxe" && ext != ".pxelinux" {
			continue
		}
		n++
		t.Run(filepath.Base(f), func(t *testing.T) {
			text, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var verr error
			if ext == ".ipxe" {
				verr = ValidateIPXE(string(text))
			} else {
				verr = ValidatePxelinux(string(text))
			}
			base := strings.TrimSuffix(filepath.Base(f), ext)
			if strings.HasPrefix(base, "ok-") {
				if verr != nil {
					t.Fatal(verr)
				}
				return
			}
			want, err := os.ReadFile(strings.TrimSuffix(f, ext) + ".err")
			if err != nil {
				t.Fatal(err)
			}
			if verr == nil || verr.Error() != strings.TrimSpace(string(want)) {
				t.Errorf("got %v\nwant %s", verr, strings.TrimSpace(string(want)))
			}
		})
	}
	if n < 4 {
		t.Errorf("only %d sample files in testdata/validate", n)
	}
}

func TestSuggest(t *testing.T) {
	for _, c := range []struct {
		in   string
		want string
	}{
		{"kernl", "kernel"}, {"chian", "chain"}, {"imgfetc", "imgfetch"}, {"xyzzy", ""},
		{"kernel", ""}, {"", ""}, {"sanbot", "sanboot"},
	} {
		if got := suggest(c.in, keys(ipxeCommands)); got != c.want {
			t.Errorf("suggest(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// checkPosition asserts that a validation error points inside text.
func checkPosition(t *testing.T, text string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("%T is not a *ValidationError: %v", err, err)
	}
	lines := strings.Split(text, "\n")
	if ve.Line < 1 || ve.Line > len(lines) {
		t.Fatalf("line %d outside 1..%d: %v", ve.Line, len(lines), err)
	}
	if ve.Col < 1 || ve.Col > utf8.RuneCountInString(lines[ve.Line-1])+1 {
		t.Fatalf("column %d outside line %d (%q): %v", ve.Col, ve.Line, lines[ve.Line-1], err)
	}
	if ve.Msg == "" {
		t.Fatal("empty message")
	}
}

func FuzzValidateIPXE(f *testing.F) {
	for _, s := range []string{
		"#!ipxe\nchain http://h/x\n", "#!ipxe\n:a\ngoto a\n", "#!ipxe\nkernel x \\\n y\nboot || goto f\n",
		"#!ipxe\necho ${x} # c\n&& ;", "#!ipxe\n:\n", "#!ipxe", "", "#!ipxe\r\nsleep 5\r\n", "#!ipxe\necho \xff",
		"#!ipxe\n\\", "#!ipxe\n\\\n\\\n", ":x\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		err := ValidateIPXE(text)
		checkPosition(t, text, err)
		// Masked override text must not panic either.
		_ = ValidateOverride(FormatIPXE, text)
	})
}

func FuzzValidatePxelinux(f *testing.F) {
	for _, s := range []string{
		"DEFAULT a\nLABEL a\n KERNEL k\n", "menu title x\nTEXT HELP\n", "DEFAULT\n", "label\nlocalboot -1\n",
		"", "\n\n", "F1 x\nENDTEXT\n", "DEFAULT a\r\nLABEL a\r\nKERNEL \xff\r\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		err := ValidatePxelinux(text)
		checkPosition(t, text, err)
		_ = ValidateOverride(FormatPxelinux, text)
	})
}
