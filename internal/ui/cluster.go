package ui

import "github.com/netbootui/netbootui/internal/apitype"

// Several heads: the console is given the heads' sockets (a comma-separated
// list, as the client takes it) and talks to the one that answered last;
// when that head dies its calls and its event stream fail, the reconnect
// reaches the next head, and the status read then names it. The title says
// which head the console is on (and when that head lost the quorum), and
// the status line says when it moved.

// noteHead records the head a status came from and flashes a move to
// another head (the one it was on is gone).
func (m *Model) noteHead(st apitype.Status) {
	if st.Cluster == nil {
		return
	}
	if was := m.head; was != "" && was != st.Cluster.Head {
		m.setFlash("head "+was+" is gone: now on head "+st.Cluster.Head, false)
	}
	m.head = st.Cluster.Head
}

// headTitle is the title's note of the head ("" on a single head).
func (m *Model) headTitle() string {
	c := m.status.Cluster
	if !m.haveSt || c == nil {
		return ""
	}
	if !c.Quorum {
		return m.c.Styles.Warn.Render("head "+c.Head+", no quorum") + " · "
	}
	return m.c.Styles.Dim.Render("head "+c.Head) + " · "
}
