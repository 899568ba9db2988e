package lab

import (
	"errors"
	"io"
	"net"
	"os"
	"time"
)

// ClosedWithin reports whether the peer closes c (an end of stream or a
// reset while reading) within d; it reads and discards what comes meanwhile.
// Flood and limit tests use it to see a server cut a connection.
func ClosedWithin(c net.Conn, d time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	return !errors.Is(err, os.ErrDeadlineExceeded)
}
