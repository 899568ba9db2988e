package etcd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/netbootui/netbootui/internal/clustercert"
)

// MemberConfig is one head's embedded etcd member.
type MemberConfig struct {
	// Name is the member's name in InitialCluster (the head's name).
	Name string
	// Dir is the member's data directory (DATA/etcd).
	Dir string
	// PeerURL is where the other members reach this one
	// ("http://10.0.0.1:2380"); it is also the address listened on.
	PeerURL string
	// ClientURL is where clients (this head's store, etcdctl) reach it
	// ("http://127.0.0.1:2379").
	ClientURL string
	// InitialCluster names every first member: "h1=http://10.0.0.1:2380,h2=...".
	// Empty: this member alone.
	InitialCluster string
	// Join adds this member to a running cluster (initial-cluster-state
	// existing) instead of forming a new one; the cluster must already
	// list it (etcdctl member add).
	Join bool
	// Token names the cluster, so that members of another one are refused
	// (default "netbootui").
	Token string
	// Heartbeat and Election are raft's timings (defaults 100 ms and 1 s,
	// etcd's). Tests on a loaded machine set them explicitly.
	Heartbeat, Election time.Duration
	// StartTimeout bounds the wait for the member to join its cluster
	// (default 60 s).
	StartTimeout time.Duration
	// TLS, when set, is the cluster's trust (internal/clustercert): the
	// member serves its peer and client URLs (https) with the head's
	// certificate and takes only peers and clients that present a
	// certificate of the cluster's CA (mutual TLS both ways).
	TLS *clustercert.Bundle
}

// MaxTxnOps is how many operations one transaction of an embedded member
// may hold: a boot-state batch of a storm is one transaction (etcd's
// default, 128, is raised; an external etcd needs --max-txn-ops as large,
// or the store splits batches, see Options.MaxTxnOps).
const MaxTxnOps = 8192

// maxRequestBytes bounds one request to an embedded member (a storm's
// batch, an inventory document).
const maxRequestBytes = 16 << 20

// Member is a running embedded etcd member.
type Member struct {
	e   *embed.Etcd
	cfg MemberConfig
}

// StartMember starts the member and waits until it has joined its cluster
// (which needs a quorum of InitialCluster to be started too).
func StartMember(mc MemberConfig) (*Member, error) {
	if mc.Name == "" || mc.Dir == "" || mc.PeerURL == "" || mc.ClientURL == "" {
		return nil, errors.New("etcd: a member needs a name, a data dir, a peer URL and a client URL")
	}
	if mc.Token == "" {
		mc.Token = "netbootui"
	}
	if mc.InitialCluster == "" {
		mc.InitialCluster = mc.Name + "=" + mc.PeerURL
	}
	if mc.StartTimeout <= 0 {
		mc.StartTimeout = 60 * time.Second
	}
	peer, err := parseURL("peer", mc.PeerURL, mc.TLS != nil)
	if err != nil {
		return nil, err
	}
	client, err := parseURL("client", mc.ClientURL, mc.TLS != nil)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(mc.Dir, 0o700); err != nil {
		return nil, err
	}
	cfg := embed.NewConfig()
	cfg.Name, cfg.Dir = mc.Name, mc.Dir
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*peer}, []url.URL{*peer}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*client}, []url.URL{*client}
	cfg.InitialCluster, cfg.InitialClusterToken = mc.InitialCluster, mc.Token
	cfg.ClusterState = embed.ClusterStateFlagNew
	if mc.Join {
		cfg.ClusterState = embed.ClusterStateFlagExisting
	}
	if mc.Heartbeat > 0 {
		cfg.TickMs = uint(mc.Heartbeat / time.Millisecond)
	}
	if mc.Election > 0 {
		cfg.ElectionMs = uint(mc.Election / time.Millisecond)
	}
	if b := mc.TLS; b != nil {
		info := transport.TLSInfo{CertFile: b.CertFile, KeyFile: b.KeyFile, TrustedCAFile: b.CAFile, ClientCertAuth: true}
		cfg.PeerTLSInfo, cfg.ClientTLSInfo = info, info
	}
	cfg.MaxTxnOps, cfg.MaxRequestBytes = MaxTxnOps, maxRequestBytes
	// Keep a bounded history of revisions: an hour's worth is compacted away.
	cfg.AutoCompactionMode, cfg.AutoCompactionRetention = "periodic", "1h"
	// etcd's own log at error level, without the messages every shutdown
	// produces (lab notes).
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(quietLogger())
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("etcd member %s: %w", mc.Name, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("etcd member %s: %w", mc.Name, err)
	case <-time.After(mc.StartTimeout):
		e.Server.Stop()
		e.Close()
		return nil, fmt.Errorf("etcd member %s: not joined after %v (are a majority of %s started?)", mc.Name, mc.StartTimeout, mc.InitialCluster)
	}
	return &Member{e: e, cfg: mc}, nil
}

// parseURL checks a member's URL: https with the cluster's TLS, http
// without.
func parseURL(what, s string, secure bool) (*url.URL, error) {
	scheme := "http"
	if secure {
		scheme = "https"
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != scheme || u.Host == "" {
		return nil, fmt.Errorf("etcd: bad %s URL %q (want %s://host:port)", what, s, scheme)
	}
	return u, nil
}

// quietLogger logs etcd's errors to stderr, except those of a normal
// shutdown.
func quietLogger() *zap.Logger {
	enc := zapcore.NewConsoleEncoder(zap.NewProductionEncoderConfig())
	core := zapcore.NewCore(enc, zapcore.Lock(os.Stderr), zapcore.ErrorLevel)
	return zap.New(&shutdownFilter{core})
}

type shutdownFilter struct{ zapcore.Core }

func (f *shutdownFilter) With(fields []zapcore.Field) zapcore.Core {
	return &shutdownFilter{f.Core.With(fields)}
}

func (f *shutdownFilter) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	for _, s := range []string{"server closed", "closed network connection", "stopped", "failed to reach the peer", "lost TCP streaming", "failed to dial", "prober detected unhealthy", "failed to publish", "setting up serving", "failed to update storage version"} {
		if strings.Contains(e.Message, s) {
			return ce
		}
	}
	return f.Core.Check(e, ce)
}

// Name is the member's name.
func (m *Member) Name() string { return m.cfg.Name }

// ClientURL is where clients reach the member.
func (m *Member) ClientURL() string { return m.cfg.ClientURL }

// ID is the member's id in the cluster.
func (m *Member) ID() uint64 { return uint64(m.e.Server.MemberID()) }

// Done is closed when the member stopped (Close, or a fatal error).
func (m *Member) Done() <-chan struct{} { return m.e.Server.StopNotify() }

// Close stops the member (its data directory stays: a restart rejoins).
func (m *Member) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan struct{})
	go func() { m.e.Close(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return errors.New("etcd: member did not stop in 10 s")
	}
}

// NewClient returns an etcd client of endpoints (client URLs), with the
// dial and keep-alive settings a head uses.
func NewClient(endpoints []string) (*clientv3.Client, error) {
	return NewClientTLS(endpoints, nil)
}

// NewClientTLS is NewClient over TLS (tc: a clustercert.Bundle's Client,
// which presents the head's certificate; nil: plain).
func NewClientTLS(endpoints []string, tc *tls.Config) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{
		TLS:                  tc,
		Endpoints:            endpoints,
		DialTimeout:          5 * time.Second,
		DialKeepAliveTime:    2 * time.Second,
		DialKeepAliveTimeout: 2 * time.Second,
		AutoSyncInterval:     30 * time.Second,
		Logger:               zap.NewNop(),
	})
}

// HeadConfig is how a head reaches its cluster: an embedded member of its
// own (Member set), or an existing etcd (Endpoints).
type HeadConfig struct {
	// Member is this head's embedded member (Name "" for none).
	Member MemberConfig
	// Endpoints are the client URLs of an existing etcd (without a
	// member of this head's own).
	Endpoints []string
	// Store tunes the store (its Head defaults to the member's name).
	Store Options
	// TLS is the client side of the cluster's trust (for Endpoints; a
	// member's own is Member.TLS).
	TLS *clustercert.Bundle
}

// OpenHead starts the head's member (when it has one), connects to it or
// to the endpoints, and opens the store; closing the store closes the
// client, then the member.
func OpenHead(hc HeadConfig) (*Store, error) {
	var m *Member
	endpoints := hc.Endpoints
	if hc.Member.Name != "" {
		var err error
		if m, err = StartMember(hc.Member); err != nil {
			return nil, err
		}
		endpoints = []string{m.ClientURL()}
		if hc.Store.Head == "" {
			hc.Store.Head = m.Name()
		}
		if hc.Store.MaxTxnOps == 0 {
			hc.Store.MaxTxnOps = MaxTxnOps
		}
	}
	if len(endpoints) == 0 {
		return nil, errors.New("etcd: a head needs a member of its own or etcd endpoints")
	}
	b := hc.TLS
	if hc.Member.TLS != nil {
		b = hc.Member.TLS
	}
	var tc *tls.Config
	if b != nil {
		tc = b.Client
	}
	c, err := NewClientTLS(endpoints, tc)
	if err == nil {
		var s *Store
		if s, err = Open(c, hc.Store); err == nil {
			s.OnClose(c.Close)
			s.member = m
			if m != nil {
				s.OnClose(m.Close)
			}
			return s, nil
		}
		c.Close()
	}
	if m != nil {
		m.Close()
	}
	return nil, err
}

// Member is the head's embedded member (nil when it has none).
func (s *Store) Member() *Member { return s.member }
