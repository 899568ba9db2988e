package hostlist

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestExpand(t *testing.T) {
	tests := []struct {
		expr string
		want []string
	}{
		{"", nil},
		{"n1", []string{"n1"}},
		{"n[1-3]", []string{"n1", "n2", "n3"}},
		{"n[001-003]", []string{"n001", "n002", "n003"}},
		{"n[08-10]", []string{"n08", "n09", "n10"}},
		{"n[8-10]", []string{"n8", "n9", "n10"}},
		{"n[1,3,5-7]", []string{"n1", "n3", "n5", "n6", "n7"}},
		{"n[007]", []string{"n007"}},
		{"r[1-2]-n[01-03]", []string{"r1-n01", "r1-n02", "r1-n03", "r2-n01", "r2-n02", "r2-n03"}},
		{"[1-2]x[3-4]", []string{"1x3", "1x4", "2x3", "2x4"}},
		{"n01,n[03-05],gpu1", []string{"n01", "n03", "n04", "n05", "gpu1"}},
		{"n01, n02 ,n03", []string{"n01", "n02", "n03"}},
		{"n[1-3],n2,n[2-4]", []string{"n1", "n2", "n3", "n4"}},
		{"n[3,1,2]", []string{"n3", "n1", "n2"}},
		{"rack1.n[1-2].example", []string{"rack1.n1.example", "rack1.n2.example"}},
		{"@compute", []string{"@compute"}},
		{" n1 ", []string{"n1"}},
	}
	for _, tc := range tests {
		t.Run(tc.expr, func(t *testing.T) {
			got, err := Expand(tc.expr)
			if err != nil {
				t.Fatalf("Expand(%q): %v", tc.expr, err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("Expand(%q) = %q, want %q", tc.expr, got, tc.want)
			}
		})
	}
}

func TestExpandErrors(t *testing.T) {
	tests := []struct {
		expr, want string
	}{
		{"n[3-1]", `hostlist: "n[3-1]": column 3: range 3-1 is reversed`},
		{"n[1-3", `hostlist: "n[1-3": column 5: unclosed '['`},
		{"n[", `hostlist: "n[": column 2: unclosed '['`},
		{"n[]", `hostlist: "n[]": column 3: expected a number, found ']'`},
		{"n[a-b]", `hostlist: "n[a-b]": column 3: expected a number, found 'a'`},
		{"n[1-]", `hostlist: "n[1-]": column 5: expected a number, found ']'`},
		{"n1]", `hostlist: "n1]": column 3: unexpected ']' without '['`},
		{"n[1[2]]", `hostlist: "n[1[2]]": column 4: unexpected '[' inside brackets`},
		{"n[1 2]", `hostlist: "n[1 2]": column 4: unexpected ' ' inside brackets`},
		{"a,,b", `hostlist: "a,,b": column 3: empty name`},
		{"a,", `hostlist: "a,": column 2: empty name after comma`},
		{",a", `hostlist: ",a": column 1: empty name`},
		{"n 1", `hostlist: "n 1": column 2: space inside a name`},
		{"n\x01", `hostlist: "n\x01": column 2: control character '\x01' in name`},
		{"n[0-999999999]", `hostlist: "n[0-999999999]": column 2: expands to more than 1000000 names`},
		{"a[1-1000]b[1-1001]", `hostlist: "a[1-1000]b[1-1001]": column 1: expands to more than 1000000 names`},
		{"a[1-600000],b[1-600000]", `hostlist: "a[1-600000],b[1-600000]": column 13: expression expands to more than 1000000 names`},
		{"n[1234567890123456789]", `hostlist: "n[1234567890123456789]": column 3: number 1234567890123456789 is longer than 18 digits`},
	}
	for _, tc := range tests {
		t.Run(tc.expr, func(t *testing.T) {
			got, err := Expand(tc.expr)
			if err == nil {
				t.Fatalf("Expand(%q) = %q, want error %s", tc.expr, got, tc.want)
			}
			if err.Error() != tc.want {
				t.Errorf("Expand(%q) error\n got %s\nwant %s", tc.expr, err, tc.want)
			}
		})
	}
}

func TestCompress(t *testing.T) {
	tests := []struct {
		names []string
		want  string
	}{
		{nil, ""},
		{[]string{"n1"}, "n1"},
		{[]string{"n01", "n02", "n03", "n04", "n07"}, "n[01-04,07]"},
		{[]string{"n07", "n03", "n01", "n02", "n04"}, "n[01-04,07]"},
		{[]string{"n08", "n09", "n10"}, "n[08-10]"},
		{[]string{"n8", "n9", "n10"}, "n[8-10]"},
		{[]string{"n1", "n01"}, "n[01,1]"},
		{[]string{"gpu1", "n1", "gpu2", "n2", "login"}, "gpu[1-2],n[1-2],login"},
		{[]string{"r1-n01", "r1-n02", "r2-n01"}, "r1-n[01-02],r2-n01"},
		{[]string{"a1b", "a2b", "a3c"}, "a[1-2]b,a3c"},
		{[]string{"x", "x", "n1", "n1"}, "x,n1"},
		{[]string{"9", "10", "11"}, "[9-11]"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.names, ","), func(t *testing.T) {
			got := Compress(tc.names)
			if got != tc.want {
				t.Fatalf("Compress(%q) = %q, want %q", tc.names, got, tc.want)
			}
			back, err := Expand(got)
			if err != nil {
				t.Fatalf("Expand(Compress) = %v", err)
			}
			if !sameSet(back, tc.names) {
				t.Errorf("Expand(%q) = %q, not the set %q", got, back, tc.names)
			}
		})
	}
}

func TestIsRange(t *testing.T) {
	for s, want := range map[string]bool{
		"n1": false, "gpu-01.rack2": false, "n[1-2]": true, "a,b": true, "": false,
	} {
		if got := IsRange(s); got != want {
			t.Errorf("IsRange(%q) = %v, want %v", s, got, want)
		}
	}
}

func sameSet(a, b []string) bool {
	as := map[string]bool{}
	for _, x := range a {
		as[x] = true
	}
	bs := map[string]bool{}
	for _, x := range b {
		bs[x] = true
	}
	if len(as) != len(bs) {
		return false
	}
	for x := range as {
		if !bs[x] {
			return false
		}
	}
	return true
}

func FuzzExpand(f *testing.F) {
	for _, s := range []string{"n[001-128]", "r[1-4]-n[01-32]", "n[1,3,5-7]", "n01,n[03-05],gpu1", "n[3-1]", "a,,b", "n[08-10]", "[0-9][0-9]", "n1,n01"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		names, err := Expand(expr)
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error of type %T", err)
			}
			return
		}
		if len(names) > MaxNames {
			t.Fatalf("%d names", len(names))
		}
		if len(names) > 20000 {
			return // keep each fuzz input fast
		}
		c := Compress(names)
		back, err := Expand(c)
		if err != nil {
			t.Fatalf("Expand(Compress(Expand(%q))) = Expand(%q): %v", expr, c, err)
		}
		if !sameSet(back, names) || len(back) != len(names) {
			t.Fatalf("Expand(%q) = %q; Compress = %q; expands back to %q", expr, names, c, back)
		}
	})
}

func BenchmarkExpand(b *testing.B) {
	for b.Loop() {
		if _, err := Expand("r[1-10]-n[001-999]"); err != nil {
			b.Fatal(err)
		}
	}
}

func ExampleExpand() {
	names, _ := Expand("r[1-2]-n[01-02],gpu1")
	fmt.Println(names)
	// Output: [r1-n01 r1-n02 r2-n01 r2-n02 gpu1]
}

func ExampleCompress() {
	fmt.Println(Compress([]string{"n01", "n02", "n03", "n04", "n07"}))
	// Output: n[01-04,07]
}

func TestCount(t *testing.T) {
	for expr, want := range map[string]int{"": 0, "n1": 1, "n[1-4],x": 5, "r[1-2]-n[1-3]": 6, "n[1-2],n1": 3} {
		got, err := Count(expr)
		if err != nil || got != want {
			t.Errorf("Count(%q) = %d, %v; want %d", expr, got, err, want)
		}
	}
	if _, err := Count("n[2-1]"); err == nil {
		t.Error("Count(n[2-1]) did not fail")
	}
}

func TestCompare(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"n2", "n10", -1},
		{"n10", "n2", 1},
		{"n01", "n01", 0},
		{"n2", "n02", -1},
		{"n009", "n10", -1},
		{"gpu1", "n01", -1},
		{"n1", "n1a", -1},
		{"r1-n10", "r1-n9", 1},
		{"r2-n1", "r10-n1", -1},
		{"", "a", -1},
		{"abc", "abd", -1},
	} {
		if got := Compare(tc.a, tc.b); got != tc.want {
			t.Errorf("Compare(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
	names := []string{"n10", "n9", "gpu2", "n1", "login1", "gpu10"}
	slices.SortFunc(names, Compare)
	if got := strings.Join(names, " "); got != "gpu2 gpu10 login1 n1 n9 n10" {
		t.Errorf("sorted: %s", got)
	}
}
