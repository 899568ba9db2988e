package kernelcache

import "testing"

func TestDir(t *testing.T) {
	for _, tc := range []struct{ dir, cache, repo, want string }{
		{"/k", "/c", "/r", "/k"},
		{"", "/c", "/r", "/c/kernel"},
		{"", "", "/r", "/r/.cache/kernel"},
		{"", "", "", ""},
	} {
		t.Setenv(DirEnv, tc.dir)
		t.Setenv(CacheEnv, tc.cache)
		if got := Dir(tc.repo); got != tc.want {
			t.Errorf("%s=%q %s=%q Dir(%q) = %q, want %q", DirEnv, tc.dir, CacheEnv, tc.cache, tc.repo, got, tc.want)
		}
	}
}
