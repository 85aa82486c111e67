package pebblestore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// graft's own files in the store folder (the lock, the WAL ledger, the
// clean-shutdown marker) are read and written through an os.Root of the
// folder, so that a link planted in it cannot make the store read or
// write anywhere else.

// readStoreFile reads the store folder's file name.
func readStoreFile(dir, name string) ([]byte, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	return root.ReadFile(name)
}

// openStoreFile opens the store folder's file name for reading.
func openStoreFile(dir, name string) (*os.File, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	return root.Open(name)
}

// writeFileAtomic replaces the store folder's file name with data:
// temporary file, fsync, rename, fsync of the folder, so a crash leaves
// the old or the new content, never a mix.
func writeFileAtomic(dir, name string, data []byte) (err error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	defer root.Close()
	tmp := name + ".tmp"
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	defer func() {
		if err != nil {
			_ = root.Remove(tmp)
		}
	}()
	if _, err = f.Write(data); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = root.Rename(tmp, name)
	}
	if err == nil {
		err = syncRoot(root)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// removeFileDurably deletes the store folder's file name (if present) and
// fsyncs the folder.
func removeFileDurably(dir, name string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	defer root.Close()
	if err := root.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	if err := syncRoot(root); err != nil {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	return nil
}

// syncRoot fsyncs the folder itself, which makes its renames and removals
// durable.
func syncRoot(root *os.Root) error {
	d, err := root.Open(".")
	if err != nil {
		return fmt.Errorf("sync folder %s: %w", root.Name(), err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync folder %s: %w", root.Name(), err)
	}
	return nil
}
