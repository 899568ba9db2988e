package sol

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
)

func TestRingBounds(t *testing.T) {
	tests := []struct {
		name   string
		size   int
		writes []string
		want   string
		total  int64
	}{
		{"empty", 8, nil, "", 0},
		{"under", 8, []string{"abc"}, "abc", 3},
		{"exact", 8, []string{"abcdefgh"}, "abcdefgh", 8},
		{"wrap", 8, []string{"abcdef", "ghij"}, "cdefghij", 10},
		{"wrap twice", 4, []string{"ab", "cd", "ef", "g"}, "defg", 7},
		{"one big write", 4, []string{"0123456789"}, "6789", 10},
		{"big after wrap", 4, []string{"abc", "de", "0123456"}, "3456", 12},
		{"many small", 5, strings.Split("abcdefghijklmnop", ""), "lmnop", 16},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := NewRing(tc.size)
			for _, w := range tc.writes {
				if n, err := r.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			if got := string(r.Bytes()); got != tc.want {
				t.Errorf("Bytes = %q, want %q", got, tc.want)
			}
			if r.Total() != tc.total {
				t.Errorf("Total = %d, want %d", r.Total(), tc.total)
			}
		})
	}
}

// TestRingDefaultBound writes 1 MiB of numbered lines into the default ring:
// it keeps exactly 256 KiB, the newest, and Tail's lines are whole.
func TestRingDefaultBound(t *testing.T) {
	r := NewRing(0)
	var all bytes.Buffer
	for i := 0; all.Len() < 1<<20; i++ {
		line := fmt.Sprintf("boot line %06d\r\n", i)
		all.WriteString(line)
		r.Write([]byte(line))
	}
	got := r.Bytes()
	if len(got) != DefaultRingSize {
		t.Fatalf("kept %d bytes, want %d", len(got), DefaultRingSize)
	}
	if !bytes.Equal(got, all.Bytes()[all.Len()-DefaultRingSize:]) {
		t.Fatal("kept bytes are not the newest")
	}
	tail := r.Tail(3)
	last := strings.Split(strings.TrimSpace(strings.ReplaceAll(all.String(), "\r", "")), "\n")
	if fmt.Sprint(tail) != fmt.Sprint(last[len(last)-3:]) {
		t.Errorf("Tail(3) = %q, want %q", tail, last[len(last)-3:])
	}
	if r.Updated().IsZero() {
		t.Error("Updated is zero after writes")
	}
}

func TestRingConcurrent(t *testing.T) {
	r := NewRing(1000)
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 500; j++ {
				r.Write([]byte("0123456789"))
				r.Tail(2)
			}
		}()
	}
	wg.Wait()
	if r.Total() != 4*500*10 || len(r.Bytes()) != 1000 {
		t.Fatalf("total %d kept %d", r.Total(), len(r.Bytes()))
	}
	if got := string(r.Bytes()); got != strings.Repeat("0123456789", 100) {
		t.Fatalf("interleaved writes: %q", got[:40])
	}
}

func TestTail(t *testing.T) {
	tests := []struct {
		name string
		size int
		in   string
		n    int
		want []string
	}{
		{"none", 100, "", 3, nil},
		{"crlf", 100, "a\r\nb\r\nc\r\n", 2, []string{"b", "c"}},
		{"blank lines", 100, "a\n\n \nb\n\n\r\n", 5, []string{"a", "b"}},
		{"partial last line", 100, "a\nprompt# ", 1, []string{"prompt# "}},
		{"ansi", 100, "\x1b[1;32mOK\x1b[0m done\n", 1, []string{"OK done"}},
		{"control chars", 100, "a\x00b\x07c\x7f\td\n", 1, []string{"abc\td"}},
		{"cut first line dropped", 15, "line1\nline2\nline3\n", 5, []string{"line2", "line3"}},
		{"n zero", 100, "a\n", 0, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := NewRing(tc.size)
			r.Write([]byte(tc.in))
			if got := r.Tail(tc.n); fmt.Sprintf("%q", got) != fmt.Sprintf("%q", tc.want) {
				t.Errorf("Tail(%d) = %q, want %q", tc.n, got, tc.want)
			}
		})
	}
}

func TestEscapeReader(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    string
		escaped bool
	}{
		{"plain", "ls -l\r", "ls -l\r", false},
		{"escape first", "~.ignored", "", true},
		{"escape after CR", "ls\r~.rest", "ls\r", true},
		{"escape after LF", "ls\n~.", "ls\n", true},
		{"tilde mid line", "a~.b", "a~.b", false},
		{"double tilde", "~~.x", "~.x", false},
		{"tilde other", "~x\r~.", "~x\r", true},
		{"tilde then CR", "~\r~.", "~\r", true},
		{"tilde at EOF", "~", "~", false},
		// a terminal's answers to the node's queries do not move the line
		// start: busybox asks for the cursor position after each prompt
		{"CPR before escape", "ls\r\x1b[24;3R~.rest", "ls\r\x1b[24;3R", true},
		{"CPR first", "\x1b[1;1R~.", "\x1b[1;1R", true},
		{"CPR between tilde and dot", "ls\r~\x1b[5;1R.x", "ls\r\x1b[5;1R", true},
		{"OSC answer before escape", "\r\x1b]11;rgb:0000/0000/0000\x1b\\~.", "\r\x1b]11;rgb:0000/0000/0000\x1b\\", true},
		{"OSC BEL before escape", "\r\x1b]10;?\x07~.", "\r\x1b]10;?\x07", true},
		{"arrow key mid line", "a\x1b[A~.", "a\x1b[A~.", false},
		{"lone ESC then Enter", "x\x1b\r~.", "x\x1b\r", true},
		{"SS3 key at line start", "\x1bOP~.", "\x1bOP", true},
		{"CPR then typing", "\r\x1b[2;1Rab~.", "\r\x1b[2;1Rab~.", false},
	}
	for _, tc := range tests {
		for _, oneByte := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/onebyte=%v", tc.name, oneByte), func(t *testing.T) {
				var src io.Reader = strings.NewReader(tc.in)
				if oneByte {
					src = iotest.OneByteReader(src)
				}
				e := NewEscapeReader(src)
				got, err := io.ReadAll(e)
				if err != nil {
					t.Fatal(err)
				}
				if string(got) != tc.want || e.Escaped() != tc.escaped {
					t.Errorf("got %q escaped=%v, want %q escaped=%v", got, e.Escaped(), tc.want, tc.escaped)
				}
				if n, err := e.Read(make([]byte, 4)); e.Escaped() && (n != 0 || err != io.EOF) {
					t.Errorf("read after escape = %d, %v", n, err)
				}
			})
		}
	}
}

// FuzzEscapeReader: terminal input never panics, the output is the input
// with at most the "~~" -> "~" rewrite applied, cut at the escape.
func FuzzEscapeReader(f *testing.F) {
	for _, s := range []string{"", "~.", "a\r~.", "~~", "~x", "\n~~.\n~.", "\r\x1b[24;3R~.", "~\x1b]0;t\x07."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		e := NewEscapeReader(iotest.HalfReader(strings.NewReader(in)))
		got, err := io.ReadAll(e)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) > len(in) {
			t.Fatalf("output %q longer than input %q", got, in)
		}
		if !e.Escaped() && strings.Count(string(got), "~") < strings.Count(in, "~")/2 {
			t.Fatalf("lost tildes: %q from %q", got, in)
		}
	})
}

// FuzzRingTail: any console output keeps the bound and Tail never panics
// nor returns control characters.
func FuzzRingTail(f *testing.F) {
	f.Add([]byte("a\r\nb\x1b[0m\n"), 16)
	f.Add([]byte("\x1b["), 3)
	f.Fuzz(func(t *testing.T, b []byte, size int) {
		size = size%64 + 1
		if size < 1 {
			size = -size + 1
		}
		r := NewRing(size)
		r.Write(b)
		r.Write(b)
		if len(r.Bytes()) > size {
			t.Fatalf("kept %d > %d", len(r.Bytes()), size)
		}
		for _, l := range r.Tail(5) {
			for _, c := range []byte(l) {
				if c < 0x20 && c != '\t' || c == 0x7f {
					t.Fatalf("control byte %#x in %q", c, l)
				}
			}
		}
	})
}
