package storm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/netbootui/netbootui/internal/demo"
	"github.com/netbootui/netbootui/internal/image"
	"github.com/netbootui/netbootui/internal/pxe"
)

// peers are tftpd-hpa (in.tftpd) and nginx on loopback high ports, serving
// a copy of what the daemon serves: the same bootloaders, the entries the
// daemon renders (with its URL replaced by nginx's), the same generation
// files, and a check-in URL that answers 200.
type peers struct {
	dir        string
	tftpRoot   string
	www        string
	tftpAddr   string
	baseURL    string
	tftpd, web *exec.Cmd
}

// PeerTools are the programs the comparison runs.
var PeerTools = []string{"in.tftpd", "nginx"}

// checkPeers says why the comparison cannot run here ("" when it can).
func checkPeers() string {
	for _, t := range PeerTools {
		if _, err := exec.LookPath(t); err != nil {
			return t + " is not installed (apt-get install tftpd-hpa nginx-light)"
		}
	}
	if os.Geteuid() != 0 {
		return "in.tftpd serves a folder only by chroot (-s), which needs root"
	}
	return ""
}

func freeAddr(network string) (string, error) {
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		defer c.Close()
		return c.LocalAddr().String(), nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// startPeers starts both servers on empty folders; fill puts the files in.
func startPeers(ctx context.Context, workDir string) (_ *peers, err error) {
	if why := checkPeers(); why != "" {
		return nil, errors.New(why)
	}
	p := &peers{dir: filepath.Join(workDir, "peers")}
	defer func() {
		if err != nil {
			p.close()
		}
	}()
	p.tftpRoot, p.www = filepath.Join(p.dir, "tftp"), filepath.Join(p.dir, "www")
	for _, d := range []string{p.dir, p.tftpRoot, p.www, filepath.Join(p.dir, "tmp")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
		os.Chmod(d, 0o755)
	}
	if p.tftpAddr, err = freeAddr("udp"); err != nil {
		return nil, err
	}
	httpAddr, err := freeAddr("tcp")
	if err != nil {
		return nil, err
	}
	p.baseURL = "http://" + httpAddr
	p.tftpd = exec.CommandContext(ctx, "in.tftpd", "-L", "-a", p.tftpAddr, "-s", "-u", "root", "-B", "1468", p.tftpRoot)
	conf := fmt.Sprintf(`daemon off;
master_process off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  sendfile on;
  keepalive_requests 10000;
  default_type application/octet-stream;
  client_body_temp_path %[1]s/tmp;
  proxy_temp_path %[1]s/tmp;
  fastcgi_temp_path %[1]s/tmp;
  uwsgi_temp_path %[1]s/tmp;
  scgi_temp_path %[1]s/tmp;
  server {
    listen %[2]s;
    root %[3]s;
    location = /checkin { return 200 "ok\n"; }
  }
}
`, p.dir, httpAddr, p.www)
	if err := os.WriteFile(filepath.Join(p.dir, "nginx.conf"), []byte(conf), 0o644); err != nil {
		return nil, err
	}
	p.web = exec.CommandContext(ctx, "nginx", "-p", p.dir, "-c", filepath.Join(p.dir, "nginx.conf"), "-e", filepath.Join(p.dir, "error.log"))
	for _, c := range []*exec.Cmd{p.tftpd, p.web} {
		c.Stderr = io.Discard
		c.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := c.Start(); err != nil {
			return nil, fmt.Errorf("%s: %w", c.Path, err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", httpAddr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(p.dir, "error.log"))
			return nil, fmt.Errorf("nginx on %s did not start: %v %s", httpAddr, err, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return p, nil
}

func (p *peers) close() {
	for _, c := range []*exec.Cmd{p.tftpd, p.web} {
		if c != nil && c.Process != nil {
			c.Process.Signal(syscall.SIGTERM)
			done := make(chan struct{})
			go func() { c.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				c.Process.Kill()
				<-done
			}
		}
	}
	os.RemoveAll(p.dir)
}

// fill copies what the daemon of d would serve into the peers' folders.
func (p *peers) fill(d *demo.Demo) error {
	daemonBase := "http://" + d.Daemon.HTTPAddr().String()
	for _, name := range d.Names {
		entry, err := d.Daemon.BootEntry(name, "")
		if err != nil {
			return err
		}
		entry = strings.ReplaceAll(entry, daemonBase, p.baseURL)
		v, err := d.Daemon.Node(name)
		if err != nil {
			return err
		}
		var path string
		if v.Loader == "pxelinux" {
			path = filepath.Join(p.tftpRoot, "pxelinux.cfg", "01-"+strings.ReplaceAll(v.MAC, ":", "-"))
		} else {
			path = filepath.Join(p.www, "boot", v.MAC+".ipxe")
		}
		if err := writeFile(path, []byte(entry)); err != nil {
			return err
		}
	}
	rel := filepath.Join("images", "default", d.Generation)
	for _, f := range []string{image.FileKernel, image.FileInitrd, image.FileRootfs} {
		src, err := d.Daemon.Images().Path("default", d.Generation, f)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		roots := []string{p.www}
		if f != image.FileRootfs {
			roots = append(roots, p.tftpRoot)
		}
		for _, r := range roots {
			if err := writeFile(filepath.Join(r, rel, f), b); err != nil {
				return err
			}
		}
	}
	loaders := pxe.DefaultLoaders()
	for _, name := range []string{"undionly.kpxe", "ipxe.efi", "pxelinux.0", "syslinux.efi"} {
		src := loaders[name]
		if src == "" {
			src = filepath.Join(d.BootRoot, name)
		}
		b, err := os.ReadFile(src)
		if err != nil {
			return fmt.Errorf("bootloader %s: %w", name, err)
		}
		if err := writeFile(filepath.Join(p.tftpRoot, name), b); err != nil {
			return err
		}
	}
	return nil
}

func writeFile(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// ratio formats how many times longer b took than a.
func ratio(a, b time.Duration) string {
	if a <= 0 {
		return "n/a"
	}
	return strconv.FormatFloat(float64(b)/float64(a), 'f', 2, 64)
}
