package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/netbootui/netbootui/internal/apiclient"
	"github.com/netbootui/netbootui/internal/atomicfile"
	"github.com/netbootui/netbootui/internal/backup"
	"github.com/netbootui/netbootui/internal/inventory"
)

// backupCmd writes a backup of the running daemon's state to FILE.
func backupCmd() *cobra.Command {
	c := newVerb("backup FILE", "write a backup of the daemon's state to FILE (mode 0600; it holds the token key)",
		exactArgs(1), func(fs *pflag.FlagSet) runner {
			socket := socketFlag(fs)
			return func(ctx context.Context, pos []string) error {
				sum, err := writeBackup(ctx, apiclient.New(*socket), pos[0])
				if err != nil {
					return err
				}
				fmt.Fprintf(stdout, "%s: %s\n", pos[0], describeBackup(sum))
				return nil
			}
		})
	return c
}

// writeBackup streams the daemon's backup into file, replacing it only
// when the whole stream arrived and checks out (format, every checksum,
// the index last).
func writeBackup(ctx context.Context, c *apiclient.Client, file string) (*backup.Summary, error) {
	var sum *backup.Summary
	err := atomicfile.WriteFunc(file, 0o600, func(w io.Writer) error {
		pr, pw := io.Pipe()
		checked := make(chan error, 1)
		go func() {
			s, err := backup.Verify(pr)
			if err == nil {
				// Nothing may follow a whole backup.
				if n, _ := io.Copy(io.Discard, pr); n > 0 {
					err = fmt.Errorf("%d bytes after the end of the archive", n)
				}
			}
			sum = s
			pr.CloseWithError(err) // a bad stream stops the download
			checked <- err
		}()
		err := c.Backup(ctx, io.MultiWriter(w, pw))
		pw.CloseWithError(err)
		if verr := <-checked; err == nil && verr != nil {
			err = fmt.Errorf("the daemon's backup does not check out: %w", verr)
		}
		return err
	})
	return sum, err
}

// describeBackup says what a backup holds, never its secrets.
func describeBackup(s *backup.Summary) string {
	docs := "no rollouts"
	if len(s.Documents) > 0 {
		docs = strings.Join(s.Documents, ", ")
	}
	return fmt.Sprintf("backup of %s: inventory %s, boot state of %d nodes (%d events), check-in records of %d, %d audit entries, %d images (%d generations), %s, token key; %d files, %d bytes",
		s.Header.Created.Format("2006-01-02 15:04:05Z"), s.Header.Inventory, s.Nodes, s.Events, s.Checkins, s.Audit, s.Images, s.Generations, docs, s.Entries, s.Bytes)
}

// restoreCmd fills an empty data folder and a new inventory file from a
// backup.
func restoreCmd() *cobra.Command {
	var data, inv *string
	c := newVerb("restore FILE --data DIR --inventory PATH", "restore a backup into an empty data folder and a new inventory file",
		func(c *cobra.Command, pos []string) error {
			if *data == "" || *inv == "" {
				return usageError{cmd: c, msg: "want --data DIR and --inventory PATH"}
			}
			return exactArgs(1)(c, pos)
		}, func(fs *pflag.FlagSet) runner {
			data = fs.String("data", "", "the data `folder` to fill: it must not exist or be empty")
			inv = fs.String("inventory", "", "where the inventory goes: a `path` that must not exist")
			return func(_ context.Context, pos []string) error {
				sum, err := backup.Restore(pos[0], *data, *inv)
				if err != nil {
					return err
				}
				fmt.Fprintf(stdout, "restored %s into %s and %s\n", describeBackup(sum), *data, *inv)
				if loaded, err := inventory.Load(*inv); err == nil && loaded.Settings.Secrets != "" {
					fmt.Fprintf(stdout, "BMC passwords are not in backups: put the secrets file at %s (mode 0600)\n", loaded.SecretsPath())
				}
				return nil
			}
		})
	c.MarkFlagDirname("data")
	return c
}
