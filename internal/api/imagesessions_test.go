package api

import "testing"

func TestTermSize(t *testing.T) {
	for _, tc := range []struct {
		rows, cols string
		want       [2]uint16
		err        bool
	}{
		{"", "", [2]uint16{24, 80}, false},
		{"50", "200", [2]uint16{50, 200}, false},
		{"1000", "1", [2]uint16{1000, 1}, false},
		{"0", "80", [2]uint16{}, true},
		{"24", "", [2]uint16{}, true},
		{"24", "1001", [2]uint16{}, true},
		{"-3", "80", [2]uint16{}, true},
		{"x", "80", [2]uint16{}, true},
	} {
		got, err := termSize(tc.rows, tc.cols)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("termSize(%q, %q) = %v, %v; want %v (error %v)", tc.rows, tc.cols, got, err, tc.want, tc.err)
		}
	}
}
