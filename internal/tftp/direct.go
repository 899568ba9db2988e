package tftp

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// runDirect runs one transfer on the calling goroutine, the way a
// process-per-client server does: a blocking read(2) waits for the
// client's next packet (SO_RCVTIMEO bounds the wait), and the thread the
// client's ACK wakes sends the next block itself. Measured against the
// shared loop with 32 clients on 2 CPUs (bench/tftp/contention.sh): the
// wake-ups of a pair stay on one CPU, and both the server and its clients
// use less CPU. The transfer gets a loop of its own (its buffers, clock
// and timer) without an epoll set.
func (s *Server) runDirect(t *transfer) {
	l := &loop{s: s, epfd: -1, wake: -1, transfers: make(map[int32]*transfer, 1),
		pkt: make([]byte, 4+t.blksize), rbuf: make([]byte, 2048), epoch: time.Now()}
	l.load.Add(1)
	t.loop = l
	l.transfers[int32(t.fd)] = t
	if err := unix.SetNonblock(t.fd, false); err != nil {
		t.finish(fmt.Errorf("socket: %w", err))
		return
	}
	t.resend()
	var set int64 // the receive timeout on the socket, ns
	for !t.done {
		wait := t.deadline - l.clock
		if wait <= 0 {
			t.expired()
			continue
		}
		// Within a millisecond of the one set: kept (a setsockopt per
		// retry or stray packet, not per block).
		if d := wait - set; d > int64(time.Millisecond) || d < -int64(time.Millisecond) {
			tv := unix.NsecToTimeval(wait)
			if err := unix.SetsockoptTimeval(t.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
				t.finish(fmt.Errorf("socket: %w", err))
				return
			}
			set = wait
		}
		// unix.Read tells the runtime that the thread may block: its
		// processor goes to other goroutines while the client thinks.
		n, err := unix.Read(t.fd, l.rbuf)
		l.clock = l.now()
		if err == unix.EAGAIN {
			continue // the timeout: the top of the loop resends
		}
		t.received(n, err)
	}
}
