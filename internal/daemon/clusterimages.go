package daemon

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/netbootui/netbootui/internal/image"
	"github.com/netbootui/netbootui/internal/state"
)

// ImagesDocument is the shared document of image metadata on several
// heads: every generation's manifest with the heads that hold it, and
// every image's current generation. Image bytes never go into it.
const ImagesDocument = "images.json"

// sharedImages is ImagesDocument.
type sharedImages struct {
	Generations map[string]*sharedGen `json:"generations"` // "image/id"
	Current     map[string]string     `json:"current"`     // image -> generation id
}

// sharedGen is one generation in ImagesDocument.
type sharedGen struct {
	Manifest *image.Manifest   `json:"manifest"`
	Heads    map[string]string `json:"heads"` // head -> the base URL it serves /images/ at
}

// imageSync keeps this head's image store and the shared metadata in step
// (cluster.go's run calls sync every second): a generation this head has
// (imported, built) is announced with its URL; one another head announced
// is fetched from it file by file, each checked against the manifest's
// size and sha256 before the generation enters the store (and only then
// is it served and announced); a publish on any head moves every head's
// current pointer once the generation is there.
type imageSync struct {
	d       *Daemon
	c       state.Cluster
	client  *http.Client
	synced  map[string]string // image -> the current id last agreed with the document
	started bool
	failed  map[string]string // "image/id" -> why its last fetch failed (logged once)
}

func newImageSync(d *Daemon, c state.Cluster) *imageSync {
	return &imageSync{d: d, c: c, client: d.peerClient(),
		synced: map[string]string{}, failed: map[string]string{}}
}

// run syncs every interval until ctx ends.
func (s *imageSync) run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := s.sync(ctx); err != nil && ctx.Err() == nil {
			s.d.log.Debug("cluster: image metadata", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sync announces, fetches and publishes what differs, once.
func (s *imageSync) sync(ctx context.Context) error {
	doc, err := s.update(s.announce)
	if err != nil {
		return err
	}
	fetched := false
	for key, g := range doc.Generations {
		if g.Manifest == nil {
			continue
		}
		if _, err := s.d.images.Generation(g.Manifest.Image, g.Manifest.ID); err == nil {
			continue
		}
		if err := s.fetch(ctx, g); err != nil {
			if s.failed[key] != err.Error() {
				s.d.log.Error("cluster: fetching a generation from a peer", "generation", key, "err", err)
				s.failed[key] = err.Error()
			}
			continue
		}
		delete(s.failed, key)
		s.d.log.Info("cluster: generation fetched from a peer and verified", "generation", key)
		fetched = true
	}
	if fetched {
		if doc, err = s.update(s.announce); err != nil {
			return err
		}
	}
	for img, id := range doc.Current {
		cur, _ := s.d.images.Current(img)
		if cur == id {
			s.synced[img] = id
			continue
		}
		if _, err := s.d.images.Generation(img, id); err != nil {
			continue // not here yet
		}
		if err := s.d.images.Publish(img, id); err != nil {
			return err
		}
		s.synced[img] = id
		s.d.log.Info("cluster: current generation follows the cluster", "image", img, "generation", id)
	}
	return nil
}

// update reads the document, applies change and puts it back if change
// says it changed (reading again on a conflict).
func (s *imageSync) update(change func(*sharedImages) bool) (*sharedImages, error) {
	docs := s.c.Documents()
	for range 8 {
		data, rev, err := docs.Get(ImagesDocument)
		if err != nil {
			return nil, err
		}
		doc := &sharedImages{Generations: map[string]*sharedGen{}, Current: map[string]string{}}
		if rev != 0 {
			if err := json.Unmarshal(data, doc); err != nil {
				return nil, fmt.Errorf("%s: %w", ImagesDocument, err)
			}
			if doc.Generations == nil {
				doc.Generations = map[string]*sharedGen{}
			}
			if doc.Current == nil {
				doc.Current = map[string]string{}
			}
		}
		if !change(doc) {
			return doc, nil
		}
		b, err := json.MarshalIndent(doc, "", "  ")
		if err != nil {
			return nil, err
		}
		if _, err := docs.Put(ImagesDocument, append(b, '\n'), rev); errors.Is(err, state.ErrConflict) {
			continue
		} else if err != nil {
			return nil, err
		}
		return doc, nil
	}
	return nil, fmt.Errorf("%s: %w", ImagesDocument, state.ErrConflict)
}

// announce adds this head's generations and its current pointers' changes
// to doc.
func (s *imageSync) announce(doc *sharedImages) bool {
	head, base := s.c.Head(), s.d.peerBase()
	changed := false
	imgs, _ := s.d.images.Images()
	for _, img := range imgs {
		gens, _ := s.d.images.Generations(img)
		for _, m := range gens {
			key := img + "/" + m.ID
			g := doc.Generations[key]
			if g == nil {
				g = &sharedGen{Manifest: m, Heads: map[string]string{}}
				doc.Generations[key] = g
				changed = true
			}
			if base != "" && g.Heads[head] != base {
				g.Heads[head] = base
				changed = true
			}
		}
		cur, _ := s.d.images.Current(img)
		if !s.started && doc.Current[img] != "" {
			s.synced[img] = cur // at start the cluster's pointer wins
		}
		if cur != "" && cur != s.synced[img] && doc.Current[img] != cur {
			doc.Current[img] = cur // published here since the last sync
			s.synced[img] = cur
			changed = true
		}
	}
	s.started = true
	return changed
}

// fetch copies generation g from one of the heads that hold it, checking
// every file against the manifest before the generation enters the store.
func (s *imageSync) fetch(ctx context.Context, g *sharedGen) error {
	m := g.Manifest
	if !image.ValidImageName(m.Image) || !image.ValidGenerationID(m.ID) {
		return fmt.Errorf("bad generation %q/%q", m.Image, m.ID)
	}
	var errs []error
	for head, base := range g.Heads {
		if head == s.c.Head() {
			continue
		}
		err := s.fetchFrom(ctx, base, m)
		if err == nil {
			return nil
		}
		errs = append(errs, fmt.Errorf("from %s: %w", head, err))
	}
	if len(errs) == 0 {
		return errors.New("no other head holds it")
	}
	return errors.Join(errs...)
}

func (s *imageSync) fetchFrom(ctx context.Context, base string, m *image.Manifest) error {
	if u, err := url.Parse(base); err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return fmt.Errorf("bad head URL %q", base)
	} else if s.d.peer != nil && u.Scheme != "https" {
		return fmt.Errorf("head URL %q is not https: that head runs without the cluster's TLS", base)
	}
	var bodies []io.Closer
	defer func() {
		for _, b := range bodies {
			b.Close()
		}
	}()
	i := 0
	got, err := s.d.images.ImportStream(m.Image, "peer "+base, func() (string, io.Reader, error) {
		for i < len(m.Files) && !isBootFile(m.Files[i].Name) {
			i++
		}
		if i == len(m.Files) {
			return "", nil, io.EOF
		}
		f := m.Files[i]
		i++
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+"/images/"+m.Image+"/"+m.ID+"/"+f.Name, nil)
		if err != nil {
			return "", nil, err
		}
		resp, err := s.client.Do(req)
		if err != nil {
			return "", nil, err
		}
		bodies = append(bodies, resp.Body)
		if resp.StatusCode != http.StatusOK {
			return "", nil, fmt.Errorf("%s: %s", f.Name, resp.Status)
		}
		return f.Name, &verified{r: resp.Body, want: f, h: sha256.New()}, nil
	})
	if err != nil {
		return err
	}
	if got.ID != m.ID {
		return fmt.Errorf("fetched files make generation %s, not %s", got.ID, m.ID)
	}
	return nil
}

func isBootFile(name string) bool {
	for _, f := range image.BootFiles {
		if f == name {
			return true
		}
	}
	return false
}

// verified reads a file and fails at its end (so the import is dropped)
// when its size or sha256 is not the manifest's.
type verified struct {
	r    io.Reader
	want image.FileInfo
	h    hash.Hash
	n    int64
}

func (v *verified) Read(p []byte) (int, error) {
	n, err := v.r.Read(p)
	v.n += int64(n)
	v.h.Write(p[:n])
	if v.n > v.want.Size {
		return n, fmt.Errorf("%s: more than the manifest's %d bytes", v.want.Name, v.want.Size)
	}
	if err == io.EOF {
		sum := hex.EncodeToString(v.h.Sum(nil))
		if v.n != v.want.Size || sum != v.want.SHA256 {
			return n, fmt.Errorf("%s: %d bytes with sha256 %s, the manifest says %d bytes with %s", v.want.Name, v.n, sum, v.want.Size, v.want.SHA256)
		}
	}
	return n, err
}
