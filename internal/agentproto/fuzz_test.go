package agentproto

import (
	"bytes"
	"net/url"
	"testing"
)

// FuzzParse feeds arbitrary bytes to the instruction parser (the agent's
// outside input): it must not panic, and whatever it accepts is valid and
// re-encodes to the same signed body.
func FuzzParse(f *testing.F) {
	_, priv := testKey(1)
	good, err := Sign(sample(), priv)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(magic + "\n"))
	f.Add([]byte{})
	f.Add(bytes.Replace(good, []byte("kernel-size 8247232"), []byte("kernel-size 1e9"), 1))
	f.Fuzz(func(t *testing.T, data []byte) {
		in, body, sig, err := Parse(data)
		if err != nil {
			return
		}
		if verr := in.Validate(); verr != nil {
			t.Fatalf("Parse accepted an invalid instruction: %v", verr)
		}
		if !bytes.Equal(in.body(), body) {
			t.Fatalf("accepted body is not canonical:\n%q\n%q", body, in.body())
		}
		if len(sig) != 64 {
			t.Fatalf("signature of %d bytes", len(sig))
		}
	})
}

// FuzzParseForms feeds arbitrary query strings to the poll and report
// parsers (the daemon's outside input): no panic, and an accepted poll or
// report survives its own encoding.
func FuzzParseForms(f *testing.F) {
	f.Add("node=n07&token=t&boot_id=b&nonce=0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f&result=loaded")
	f.Add("node=n07&node=n08")
	f.Add("")
	f.Fuzz(func(t *testing.T, q string) {
		v, err := url.ParseQuery(q)
		if err != nil {
			return
		}
		if p, err := ParsePoll(v); err == nil {
			if p2, err := ParsePoll(p.Form()); err != nil || p2 != p {
				t.Fatalf("poll %+v does not survive its form: %+v %v", p, p2, err)
			}
		}
		if r, err := ParseReport(v); err == nil {
			if r2, err := ParseReport(r.Form()); err != nil || r2 != r {
				t.Fatalf("report %+v does not survive its form: %+v %v", r, r2, err)
			}
		}
	})
}
