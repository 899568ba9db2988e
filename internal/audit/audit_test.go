package audit

import (
	"os"
	"path/filepath"
	"testing"
)

func TestRecordReopen(t *testing.T) {
	p := filepath.Join(t.TempDir(), "audit.log")
	l, err := Open(p, 2)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"power on", "power off", "edit node n1"} {
		if err := l.Record(Entry{Who: "uid 0 (root)", Action: a, Result: "ok"}); err != nil {
			t.Fatal(err)
		}
	}
	if r := l.Recent(10); len(r) != 2 || r[1].Action != "edit node n1" || r[0].Time.IsZero() {
		t.Fatalf("recent %+v", r)
	}
	l.Close()
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", st.Mode())
	}
	// A torn last line (a crash mid-write) is skipped, the rest loads.
	f, _ := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"time":"2026`)
	f.Close()
	l, err = Open(p, 10)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if r := l.Recent(0); len(r) != 3 || r[0].Action != "power on" {
		t.Fatalf("after reopen %+v", r)
	}
}
