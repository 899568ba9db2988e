package ipmisim_test

import (
	"context"
	"strings"
	"testing"

	"github.com/netbootui/netbootui/internal/ipmi/ipmisim"
	"github.com/netbootui/netbootui/internal/lab"
)

func TestParseState(t *testing.T) {
	tests := []struct {
		in    string
		want  ipmisim.State
		errAt string
	}{
		{"power=1\nboot=pxe\n", ipmisim.State{Power: true, Boot: "pxe"}, ""},
		{"", ipmisim.State{Boot: "default"}, ""},
		{"power=0\n\nboot=default", ipmisim.State{Boot: "default"}, ""},
		{"power=2\n", ipmisim.State{}, "f:1:"},
		{"boot=pxe\nnonsense\n", ipmisim.State{}, "f:2:"},
		{"color=red\n", ipmisim.State{}, "f:1:"},
	}
	for _, tc := range tests {
		got, err := ipmisim.ParseState("f", []byte(tc.in))
		if tc.errAt != "" {
			if err == nil || !strings.HasPrefix(err.Error(), tc.errAt) {
				t.Errorf("%q: err %v, want at %s", tc.in, err, tc.errAt)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: %+v, %v", tc.in, got, err)
		}
	}
}

func FuzzParseState(f *testing.F) {
	f.Add([]byte("power=1\nboot=pxe\n"))
	f.Add([]byte("power=\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := ipmisim.ParseState("f", b)
		if err == nil && st.Boot == "" {
			t.Fatalf("accepted %q with no boot device", b)
		}
	})
}

func TestStartBadOptions(t *testing.T) {
	tests := []ipmisim.Options{
		{},
		{Dir: t.TempDir(), Password: `a"b`},
	}
	for _, o := range tests {
		if s, err := ipmisim.Start(context.Background(), o); err == nil {
			_ = s.Stop()
			t.Errorf("%+v: started", o)
		}
	}
}

func TestStartStop(t *testing.T) {
	lab.RequireTools(t, "ipmi_sim")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := ipmisim.Start(ctx, ipmisim.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if s.Port() == 0 || !strings.HasPrefix(s.Addr(), "127.0.0.1:") {
		t.Fatalf("addr %s", s.Addr())
	}
	cancel() // ending ctx kills it
	<-s.Done()
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
}
