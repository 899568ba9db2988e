package tftp

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// logEvery is how often one kind of line (a refusal, a shed request, a
// failed transfer) is logged at most; the lines in between are counted and
// the count is logged with the next one.
const logEvery = 10 * time.Second

// logLimiter bounds the server's own log lines: a flood of bogus requests
// or of abandoned transfers costs one line per kind every logEvery.
type logLimiter struct {
	mu    sync.Mutex
	kinds map[string]*logKind
}

type logKind struct {
	last       time.Time
	suppressed int
	level      slog.Level
	msg        string
}

func (l *logLimiter) warn(log *slog.Logger, kind, msg string, args ...any) {
	l.log(log, slog.LevelWarn, kind, msg, args...)
}

func (l *logLimiter) info(log *slog.Logger, kind, msg string, args ...any) {
	l.log(log, slog.LevelInfo, kind, msg, args...)
}

func (l *logLimiter) log(log *slog.Logger, level slog.Level, kind, msg string, args ...any) {
	if !log.Enabled(context.Background(), level) {
		return
	}
	now := time.Now()
	l.mu.Lock()
	if l.kinds == nil {
		l.kinds = make(map[string]*logKind)
	}
	k := l.kinds[kind]
	if k == nil {
		k = &logKind{}
		l.kinds[kind] = k
	}
	if !k.last.IsZero() && now.Sub(k.last) < logEvery {
		k.suppressed++
		k.level, k.msg = level, msg
		l.mu.Unlock()
		return
	}
	k.last = now
	suppressed := k.suppressed
	k.suppressed = 0
	l.mu.Unlock()
	if suppressed > 0 {
		args = append(args, "similar_lines_suppressed", suppressed)
	}
	log.Log(context.Background(), level, msg, args...)
}

// flush logs the counts of lines still suppressed (at Close).
func (l *logLimiter) flush(log *slog.Logger) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range l.kinds {
		if k.suppressed > 0 {
			log.Log(context.Background(), k.level, k.msg+" (summary)", "similar_lines_suppressed", k.suppressed)
			k.suppressed = 0
		}
	}
}
