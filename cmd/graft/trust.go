package main

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/graft-host/graft/cmd/graft/internal/config"
	"github.com/graft-host/graft/internal/trust"
	"github.com/graft-host/graft/upgrade"
)

// modulesDir is where a config's core keeps its module cache and upgrade
// journal: next to the store.
func modulesDir(cfg *config.Config) string { return filepath.Join(cfg.Store.Path, "modules") }

// loadTrusted loads the config of `graft run` and refuses to go on, like
// ssh's StrictModes, when anything the core would run or believe could
// have been written by another user (guarantee G9): the config file, the
// store folder, the module cache and the control folder, and the folders
// on their way. Every such problem is listed, each with its fix. A
// behaviour whose configured binary was deleted is not a problem when the
// module cache holds its version: the core starts from the cache.
func loadTrusted(path string) (*config.Config, error) {
	cfg, err := config.LoadFor(path, func(c *config.Config, behaviour string) bool {
		return upgrade.Knows(modulesDir(c), behaviour)
	})
	if err != nil {
		return nil, err
	}
	err = errors.Join(
		trust.GivenFile(cfg.File, "config file"),
		trust.CheckDir(cfg.Store.Path, "store folder (store.path)"),
		trust.CheckDir(modulesDir(cfg), "module cache"),
		trust.CheckDir(cfg.Control.Dir, "control folder (control.dir)"),
	)
	if err != nil {
		return nil, fmt.Errorf("graft run refuses to start: another user could change what this core runs (nothing was started):\n%w", err)
	}
	return cfg, nil
}
