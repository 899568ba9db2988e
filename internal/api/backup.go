package api

import (
	"fmt"
	"net/http"

	"github.com/netbootui/netbootui/internal/audit"
)

// backup streams a backup of the daemon's state (internal/backup) as the
// answer. A failure halfway aborts the connection, so the client never
// mistakes a cut stream for a whole backup (its index would be missing
// anyway). The audit entry says how many bytes went out, never what.
func (s *Server) backup(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/x-tar")
	cw := &countingWriter{w: w}
	err := s.D.Backup(cw)
	res := fmt.Sprintf("ok: %d bytes", cw.n)
	if err != nil {
		res = fmt.Sprintf("failed after %d bytes: %v", cw.n, err)
	}
	if aerr := s.D.AuditRecord(audit.Entry{Who: Who(r.Context()), Action: "backup", Result: res}); aerr != nil {
		s.logger().Error("audit log", "err", aerr)
	}
	if err != nil {
		s.logger().Error("backup", "err", err)
		panic(http.ErrAbortHandler)
	}
}

// countingWriter counts what goes through it.
type countingWriter struct {
	w http.ResponseWriter
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
