// Package clustercert is the trust of a cluster of heads: a certificate
// authority of the cluster's own and a certificate per head, signed by it,
// that the head presents both as a server and as a client. Every head
// talks to every other only over mutual TLS with these: the embedded etcd
// members to each other (peer URLs) and to their clients (client URLs),
// and a head fetching an image generation from another. A party without a
// certificate of the cluster's CA can neither join nor read.
//
// A folder made by Make holds ca.crt, ca.key (the CA's key: needed only to
// issue certificates, keep it off the heads if you can), and NAME.crt,
// NAME.key per head. Keys are written 0600 through internal/atomicfile and
// Load refuses a key another user can read. No key is ever logged or put
// in an error.
package clustercert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/netbootui/netbootui/internal/atomicfile"
)

// File names in a cluster's certificate folder.
const (
	CAFile    = "ca.crt"
	CAKeyFile = "ca.key"
)

// Validity of what Make issues.
const (
	caValidity   = 10 * 365 * 24 * time.Hour
	headValidity = 5 * 365 * 24 * time.Hour
)

// headName is what a head may be called (it names its files).
var headName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// Head is a head to issue a certificate for: its name and the addresses
// (IPs or DNS names) its peer and client URLs use. Loopback (127.0.0.1,
// ::1, localhost) is always added: a head reaches its own member there.
type Head struct {
	Name  string
	Hosts []string
}

// Make issues a certificate for each head in dir, signed by the cluster's
// CA: the CA in dir when there is one (adding a head to a running
// cluster), else a new one. A head's existing certificate is replaced.
// It returns the files it wrote.
func Make(dir string, heads []Head) ([]string, error) {
	for _, h := range heads {
		if !headName.MatchString(h.Name) {
			return nil, fmt.Errorf("clustercert: head name %q: letters, digits, '.', '_' and '-' only", h.Name)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	var wrote []string
	ca, caKey, err := loadCA(dir)
	if errors.Is(err, os.ErrNotExist) {
		if ca, caKey, err = newCA(); err != nil {
			return nil, err
		}
		if err := writePair(dir, CAFile, CAKeyFile, ca.Raw, caKey); err != nil {
			return nil, err
		}
		wrote = append(wrote, filepath.Join(dir, CAFile), filepath.Join(dir, CAKeyFile))
	} else if err != nil {
		return nil, err
	}
	for _, h := range heads {
		der, key, err := issue(ca, caKey, h)
		if err != nil {
			return nil, err
		}
		if err := writePair(dir, h.Name+".crt", h.Name+".key", der, key); err != nil {
			return nil, err
		}
		wrote = append(wrote, filepath.Join(dir, h.Name+".crt"), filepath.Join(dir, h.Name+".key"))
	}
	return wrote, nil
}

// newKey returns a new key and a certificate template for it: subject,
// serial, valid from an hour ago for validity.
func newKey(subject pkix.Name, validity time.Duration) (*ecdsa.PrivateKey, *x509.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	return key, &x509.Certificate{SerialNumber: serial(), Subject: subject, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(validity)}, nil
}

func newCA() (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, tmpl, err := newKey(pkix.Name{CommonName: "netbootui cluster CA"}, caValidity)
	if err != nil {
		return nil, nil, err
	}
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	tmpl.BasicConstraintsValid, tmpl.IsCA, tmpl.MaxPathLenZero = true, true, true
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, err
}

func issue(ca *x509.Certificate, caKey *ecdsa.PrivateKey, h Head) ([]byte, *ecdsa.PrivateKey, error) {
	key, tmpl, err := newKey(pkix.Name{CommonName: h.Name, Organization: []string{"netbootui cluster"}}, headValidity)
	if err != nil {
		return nil, nil, err
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	tmpl.DNSNames = []string{"localhost"}
	for _, host := range h.Hosts {
		if ip := net.ParseIP(host); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if host != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, host)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	return der, key, err
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail
	}
	return n
}

// writePair writes a certificate (0644) and its key (0600).
func writePair(dir, certName, keyName string, der []byte, key *ecdsa.PrivateKey) error {
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(dir, keyName), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, certName), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

func loadCA(dir string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, CAFile))
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err := readKey(filepath.Join(dir, CAKeyFile))
	if err != nil {
		return nil, nil, err
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("clustercert: %s and %s are not a certificate and its key", filepath.Join(dir, CAFile), filepath.Join(dir, CAKeyFile))
	}
	key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return nil, nil, fmt.Errorf("clustercert: %s: not an ECDSA key", filepath.Join(dir, CAKeyFile))
	}
	ca, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil || !ca.IsCA {
		return nil, nil, fmt.Errorf("clustercert: %s is not a CA certificate", filepath.Join(dir, CAFile))
	}
	return ca, key, nil
}

// readKey reads a private key file, refusing one that other users can
// read (the error names the file and its mode, never its content).
func readKey(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("clustercert: key file %s is open to other users (mode %#o): chmod 600 it", path, fi.Mode().Perm())
	}
	return os.ReadFile(path)
}

// Bundle is one head's side of the cluster's trust.
type Bundle struct {
	// CAFile, CertFile and KeyFile are the files (etcd reads them itself).
	CAFile, CertFile, KeyFile string
	// Server requires a client certificate of the cluster's CA; Client
	// presents the head's certificate and trusts only the cluster's CA.
	Server, Client *tls.Config
}

// Load reads head's certificate and key and the cluster's CA from dir
// (as Make wrote them).
func Load(dir, head string) (*Bundle, error) {
	if !headName.MatchString(head) {
		return nil, fmt.Errorf("clustercert: head name %q: letters, digits, '.', '_' and '-' only", head)
	}
	return LoadFiles(filepath.Join(dir, CAFile), filepath.Join(dir, head+".crt"), filepath.Join(dir, head+".key"))
}

// LoadFiles is Load from named files: the cluster's CA certificate, the
// head's certificate and its key (0600).
func LoadFiles(caFile, certFile, keyFile string) (*Bundle, error) {
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("clustercert: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("clustercert: %s holds no certificate", caFile)
	}
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("clustercert: %w", err)
	}
	keyPEM, err := readKey(keyFile)
	if err != nil {
		return nil, fmt.Errorf("clustercert: %w", err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("clustercert: %s and %s are not a certificate and its key", certFile, keyFile)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("clustercert: %s: %w", certFile, err)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return nil, fmt.Errorf("clustercert: %s is not signed by the cluster's CA %s: %w", certFile, caFile, err)
	}
	return &Bundle{
		CAFile: caFile, CertFile: certFile, KeyFile: keyFile,
		Server: &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{pair},
			ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool},
		Client: &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{pair}, RootCAs: pool},
	}, nil
}
