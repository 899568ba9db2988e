// Package hostlist expands and compresses host-list expressions in the
// notation of slurm and pdsh: "n[001-128]", "r[1-4]-n[01-32]", "n[1,3,5-7]",
// "n01,n[03-05],gpu1".
//
// A bracket holds a comma-separated list of numbers and inclusive ranges
// ("lo-hi"). Several brackets in one name form a cartesian product whose
// leftmost bracket varies slowest. Every number keeps the width of the text
// it was written with (for a range, the width of its lower bound), so
// "n[08-10]" is n08, n09, n10 and "n[8-10]" is n8, n9, n10.
package hostlist

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// MaxNames is the largest number of names one expression may expand to.
// Larger expressions are an error, never an allocation.
const MaxNames = 1_000_000

// maxDigits bounds the length of a number inside brackets, so that every
// bound fits a uint64 with room for arithmetic.
const maxDigits = 18

// Error is a syntax or size error in a host-list expression.
type Error struct {
	Expr string // the whole expression
	Col  int    // 1-based byte column the problem starts at
	Msg  string
}

// Error renders `hostlist: "EXPR": column N: MSG`.
func (e *Error) Error() string {
	return fmt.Sprintf("hostlist: %q: column %d: %s", e.Expr, e.Col, e.Msg)
}

// IsRange reports whether s uses host-list syntax (a bracket or a comma), as
// opposed to naming one host literally. It does not check that s is valid:
// use Expand for that.
func IsRange(s string) bool { return strings.ContainsAny(s, "[],") }

// segment is one piece of a host-list item: literal text or a bracket.
type segment struct {
	lit  string
	nums []numRange // non-nil for a bracket
}

// numRange is lo..hi inclusive, printed zero-padded to width.
type numRange struct {
	lo, hi uint64
	width  int
}

func (r numRange) count() uint64 { return r.hi - r.lo + 1 }

// item is one top-level, comma-separated part of an expression.
type item struct {
	segs  []segment
	count uint64
}

// Count returns how many names expr expands to before duplicates are removed,
// without building them; it fails exactly when Expand fails.
func Count(expr string) (int, error) {
	_, total, err := parse(expr)
	return int(total), err
}

// Expand returns the names an expression stands for, in order, without
// duplicates. Whitespace around top-level commas is ignored; whitespace inside
// a name is an error. An empty expression expands to nothing.
func Expand(expr string) ([]string, error) {
	items, total, err := parse(expr)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, total)
	seen := make(map[string]struct{}, total)
	var buf []byte
	for _, it := range items {
		idx := make([]int, len(it.segs))    // range index within a bracket
		off := make([]uint64, len(it.segs)) // offset within that range
		for {
			buf = buf[:0]
			for i, s := range it.segs {
				if s.nums == nil {
					buf = append(buf, s.lit...)
					continue
				}
				r := s.nums[idx[i]]
				buf = appendPadded(buf, r.lo+off[i], r.width)
			}
			name := string(buf)
			if _, dup := seen[name]; !dup {
				seen[name] = struct{}{}
				out = append(out, name)
			}
			// Advance the odometer: rightmost bracket fastest.
			i := len(it.segs) - 1
			for ; i >= 0; i-- {
				s := it.segs[i]
				if s.nums == nil {
					continue
				}
				off[i]++
				if off[i] < s.nums[idx[i]].count() {
					break
				}
				off[i] = 0
				idx[i]++
				if idx[i] < len(s.nums) {
					break
				}
				idx[i] = 0
			}
			if i < 0 {
				break
			}
		}
	}
	return out, nil
}

func appendPadded(b []byte, n uint64, width int) []byte {
	var tmp [20]byte
	d := strconv.AppendUint(tmp[:0], n, 10)
	for i := len(d); i < width; i++ {
		b = append(b, '0')
	}
	return append(b, d...)
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// parse splits expr into items and checks the total size.
func parse(expr string) ([]item, uint64, error) {
	fail := func(i int, format string, a ...any) error {
		return &Error{Expr: expr, Col: i + 1, Msg: fmt.Sprintf(format, a...)}
	}
	var items []item
	var total uint64
	i := 0
	n := len(expr)
	for {
		for i < n && isSpace(expr[i]) {
			i++
		}
		if i >= n {
			if len(items) > 0 {
				return nil, 0, fail(i-1, "empty name after comma")
			}
			return nil, 0, nil
		}
		start := i
		var it item
		it.count = 1
		var lit strings.Builder
		for i < n && expr[i] != ',' && !isSpace(expr[i]) {
			c := expr[i]
			switch c {
			case ']':
				return nil, 0, fail(i, "unexpected ']' without '['")
			case '[':
				if lit.Len() > 0 {
					it.segs = append(it.segs, segment{lit: lit.String()})
					lit.Reset()
				}
				open := i
				nums, next, err := parseBracket(expr, i+1, fail)
				if err != nil {
					return nil, 0, err
				}
				var c uint64
				for _, r := range nums {
					c += r.count()
					if c > MaxNames {
						return nil, 0, fail(open, "expands to more than %d names", MaxNames)
					}
				}
				if it.count*c > MaxNames {
					return nil, 0, fail(start, "expands to more than %d names", MaxNames)
				}
				it.count *= c
				it.segs = append(it.segs, segment{nums: nums})
				i = next
			default:
				if c < 0x20 || c == 0x7f {
					return nil, 0, fail(i, "control character %q in name", c)
				}
				lit.WriteByte(c)
				i++
			}
		}
		if lit.Len() > 0 {
			it.segs = append(it.segs, segment{lit: lit.String()})
		}
		if len(it.segs) == 0 {
			return nil, 0, fail(i, "empty name")
		}
		total += it.count
		if total > MaxNames {
			return nil, 0, fail(start, "expression expands to more than %d names", MaxNames)
		}
		items = append(items, it)
		// After a name: optional spaces, then a comma or the end.
		j := i
		for j < n && isSpace(expr[j]) {
			j++
		}
		if j >= n {
			return items, total, nil
		}
		if expr[j] != ',' {
			return nil, 0, fail(i, "space inside a name")
		}
		i = j + 1
	}
}

// parseBracket parses "a,b-c,...]" starting just after '['. It returns the
// ranges and the index after ']'.
func parseBracket(expr string, i int, fail func(int, string, ...any) error) ([]numRange, int, error) {
	n := len(expr)
	var nums []numRange
	num := func(i int) (uint64, int, int, error) {
		j := i
		for j < n && expr[j] >= '0' && expr[j] <= '9' {
			j++
		}
		if j == i {
			if i >= n {
				return 0, 0, 0, fail(i-1, "unclosed '['")
			}
			return 0, 0, 0, fail(i, "expected a number, found %q", expr[i])
		}
		if j-i > maxDigits {
			return 0, 0, 0, fail(i, "number %s is longer than %d digits", expr[i:j], maxDigits)
		}
		v, _ := strconv.ParseUint(expr[i:j], 10, 64)
		return v, j - i, j, nil
	}
	for {
		lo, w, j, err := num(i)
		if err != nil {
			return nil, 0, err
		}
		r := numRange{lo: lo, hi: lo, width: w}
		if j < n && expr[j] == '-' {
			hi, _, k, err := num(j + 1)
			if err != nil {
				return nil, 0, err
			}
			if hi < lo {
				return nil, 0, fail(i, "range %s is reversed", expr[i:k])
			}
			r.hi = hi
			j = k
		}
		nums = append(nums, r)
		if j >= n {
			return nil, 0, fail(j-1, "unclosed '['")
		}
		switch expr[j] {
		case ',':
			i = j + 1
		case ']':
			return nums, j + 1, nil
		default:
			return nil, 0, fail(j, "unexpected %q inside brackets", expr[j])
		}
	}
}

// Compress returns a compact expression that expands to the same set of names,
// for display: Compress([]string{"n01","n02","n03","n04","n07"}) is
// "n[01-04,07]". Names are grouped by the text around their last run of digits;
// groups appear in the order of their first name, numbers ascending within a
// group. Duplicates are dropped. Names containing '[', ']', ',' or whitespace
// cannot be written as a host list; they are passed through unchanged.
func Compress(names []string) string {
	type group struct {
		prefix, suffix string
		nums           []string // digit strings
	}
	var order []*group
	byKey := map[[2]string]*group{}
	plain := map[string]bool{}
	for _, name := range names {
		end := len(name)
		for end > 0 && !isDigit(name[end-1]) {
			end--
		}
		start := end
		for start > 0 && isDigit(name[start-1]) {
			start--
		}
		if start == end || end-start > maxDigits || strings.ContainsAny(name, "[], \t\r\n") {
			if !plain[name] {
				plain[name] = true
				order = append(order, &group{prefix: name})
			}
			continue
		}
		key := [2]string{name[:start], name[end:]}
		g := byKey[key]
		if g == nil {
			g = &group{prefix: key[0], suffix: key[1]}
			byKey[key] = g
			order = append(order, g)
		}
		g.nums = append(g.nums, name[start:end])
	}
	var out []string
	for _, g := range order {
		if g.nums == nil {
			out = append(out, g.prefix)
			continue
		}
		out = append(out, g.prefix+compressNums(g.nums)+g.suffix)
	}
	return strings.Join(out, ",")
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// compressNums turns digit strings into "07" or "[01-04,07]".
func compressNums(ds []string) string {
	type num struct {
		v uint64
		s string
	}
	ns := make([]num, 0, len(ds))
	for _, d := range ds {
		v, _ := strconv.ParseUint(d, 10, 64)
		ns = append(ns, num{v, d})
	}
	sort.Slice(ns, func(i, j int) bool {
		if ns[i].v != ns[j].v {
			return ns[i].v < ns[j].v
		}
		return ns[i].s < ns[j].s
	})
	ns = slices.CompactFunc(ns, func(a, b num) bool { return a.s == b.s })
	var parts []string
	for i := 0; i < len(ns); {
		lo := ns[i]
		j := i + 1
		last := lo
		// Extend while the next number is last+1 and prints the same at lo's width.
		for j < len(ns) {
			nx := ns[j]
			if nx.v != last.v+1 || string(appendPadded(nil, nx.v, len(lo.s))) != nx.s {
				// The same number written differently (n1, n01) may sit between.
				break
			}
			last = nx
			j++
		}
		if last.v == lo.v {
			parts = append(parts, lo.s)
		} else {
			parts = append(parts, lo.s+"-"+last.s)
		}
		i = j
	}
	if len(parts) == 1 && !strings.Contains(parts[0], "-") {
		return parts[0]
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// Compare orders host names as people read them: runs of digits compare by
// value (n2 < n10; with equal values the shorter run, n2 < n02), everything
// else byte by byte. It returns -1, 0 or +1, for slices.SortFunc.
func Compare(a, b string) int {
	for a != "" && b != "" {
		if isDigit(a[0]) && isDigit(b[0]) {
			da, db := digitRun(a), digitRun(b)
			na, nb := strings.TrimLeft(a[:da], "0"), strings.TrimLeft(b[:db], "0")
			if c := cmp.Compare(len(na), len(nb)); c != 0 {
				return c
			}
			if c := strings.Compare(na, nb); c != 0 {
				return c
			}
			if c := cmp.Compare(da, db); c != 0 {
				return c
			}
			a, b = a[da:], b[db:]
			continue
		}
		if a[0] != b[0] {
			return cmp.Compare(a[0], b[0])
		}
		a, b = a[1:], b[1:]
	}
	return cmp.Compare(len(a), len(b))
}

// digitRun is the length of s's leading run of digits.
func digitRun(s string) int {
	i := 0
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	return i
}
