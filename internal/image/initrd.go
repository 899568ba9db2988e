package image

import (
	"bufio"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strconv"

	"github.com/klauspost/compress/zstd"
)

// An initramfs is one or more newc cpio archives, one after the other,
// each plain, gzip- or zstd-compressed (dracut writes an uncompressed early
// archive before the compressed main one; the built-in init one gzip
// archive). ReadInitramfs lists its files without unpacking it.

// maxInitrdName bounds a cpio entry's name.
const maxInitrdName = 4096

// ReadInitramfs lists the entries of an initramfs: path (relative, slash
// separated), mode, owner, and size and sha256 of regular files. An entry
// given twice (a later archive overriding an earlier one) is listed as
// the kernel would unpack it: the last one wins.
func ReadInitramfs(r io.Reader) ([]TreeEntry, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	seen := map[string]int{}
	var out []TreeEntry
	for {
		// Archives are padded with zeros between them.
		for {
			b, err := br.Peek(1)
			if err == io.EOF {
				return out, nil
			}
			if err != nil {
				return nil, err
			}
			if b[0] != 0 {
				break
			}
			br.Discard(1)
		}
		magic, err := br.Peek(6)
		if err != nil {
			return nil, fmt.Errorf("initramfs: %w", io.ErrUnexpectedEOF)
		}
		var ar io.Reader
		switch {
		case string(magic) == "070701" || string(magic) == "070702":
			ar = br
		case magic[0] == 0x1f && magic[1] == 0x8b:
			zr, err := gzip.NewReader(br)
			if err != nil {
				return nil, fmt.Errorf("initramfs: %w", err)
			}
			zr.Multistream(false)
			ar = zr
		case string(magic[:4]) == "\x28\xb5\x2f\xfd":
			zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true), zstd.WithDecoderMaxWindow(64<<20))
			if err != nil {
				return nil, fmt.Errorf("initramfs: %w", err)
			}
			defer zr.Close()
			ar = zr
		default:
			return nil, fmt.Errorf("initramfs: unknown archive format (magic %q)", magic)
		}
		if err := readCpio(ar, func(e TreeEntry) {
			if i, ok := seen[e.Path]; ok {
				out[i] = e
				return
			}
			seen[e.Path] = len(out)
			out = append(out, e)
		}); err != nil {
			return nil, fmt.Errorf("initramfs: %w", err)
		}
		if ar != io.Reader(br) {
			// A compressed archive ends the file as far as this reader
			// goes: what follows the compressed stream is read by its
			// decompressor, or is the kernel's own padding.
			io.Copy(io.Discard, ar)
			return out, nil
		}
	}
}

// readCpio reads one newc archive up to its trailer.
func readCpio(r io.Reader, fn func(TreeEntry)) error {
	var hdr [110]byte
	var off int64
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return fmt.Errorf("cpio header at %d: %w", off, noEOF(err))
		}
		if m := string(hdr[:6]); m != "070701" && m != "070702" {
			return fmt.Errorf("cpio header at %d: bad magic %q", off, m)
		}
		var f [13]uint64
		for i := range f {
			v, err := strconv.ParseUint(string(hdr[6+8*i:14+8*i]), 16, 32)
			if err != nil {
				return fmt.Errorf("cpio header at %d: field %d: %q", off, i, hdr[6+8*i:14+8*i])
			}
			f[i] = v
		}
		mode, uid, gid, size, namesize := f[1], f[2], f[3], int64(f[6]), int64(f[11])
		if namesize < 1 || namesize > maxInitrdName {
			return fmt.Errorf("cpio header at %d: name size %d", off, namesize)
		}
		name := make([]byte, namesize+pad4(110+namesize))
		if _, err := io.ReadFull(r, name); err != nil {
			return fmt.Errorf("cpio name at %d: %w", off, noEOF(err))
		}
		n := string(name[:namesize-1])
		off += 110 + int64(len(name))
		if n == "TRAILER!!!" {
			return nil
		}
		e := TreeEntry{Path: cleanCpioName(n), Mode: cpioMode(mode), UID: uint32(uid), GID: uint32(gid)}
		switch {
		case e.Mode.IsRegular():
			h := sha256.New()
			if _, err := io.CopyN(h, r, size); err != nil {
				return fmt.Errorf("cpio %s: %w", n, noEOF(err))
			}
			e.Size, e.SHA256 = size, hex.EncodeToString(h.Sum(nil))
		case e.Mode&fs.ModeSymlink != 0:
			if size > maxInitrdName {
				return fmt.Errorf("cpio %s: link target of %d bytes", n, size)
			}
			t := make([]byte, size)
			if _, err := io.ReadFull(r, t); err != nil {
				return fmt.Errorf("cpio %s: %w", n, noEOF(err))
			}
			e.Link = string(t)
		default:
			if _, err := io.CopyN(io.Discard, r, size); err != nil {
				return fmt.Errorf("cpio %s: %w", n, noEOF(err))
			}
			e.Rdev = f[9]<<8 | f[10]
		}
		if p := pad4(size); p > 0 {
			if _, err := io.CopyN(io.Discard, r, p); err != nil {
				return fmt.Errorf("cpio %s: %w", n, noEOF(err))
			}
		}
		off += size + pad4(size)
		if e.Path != "" {
			fn(e)
		}
	}
}

func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

func pad4(n int64) int64 { return (4 - n%4) % 4 }

// cleanCpioName makes a cpio name relative and clean ("" for the root).
func cleanCpioName(n string) string {
	c := path.Clean("/" + n)
	if c == "/" {
		return "."
	}
	return c[1:]
}

// cpioMode turns a cpio mode (S_IF* and permission bits) into an
// fs.FileMode.
func cpioMode(m uint64) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	if m&0o4000 != 0 {
		mode |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		mode |= fs.ModeSetgid
	}
	if m&0o1000 != 0 {
		mode |= fs.ModeSticky
	}
	switch m & 0o170000 {
	case 0o040000:
		mode |= fs.ModeDir
	case 0o120000:
		mode |= fs.ModeSymlink
	case 0o020000:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	case 0o060000:
		mode |= fs.ModeDevice
	case 0o010000:
		mode |= fs.ModeNamedPipe
	case 0o140000:
		mode |= fs.ModeSocket
	}
	return mode
}
