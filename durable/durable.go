// Package durable opens badger the way every store here needs it: the
// ledger shards, the head ledger and the switch's store-and-forward queue
// each acknowledge a write only once its commit is on disk, and each has one
// writer per key. It holds that configuration and badger's log adapter, so
// that the stores differ only in their sizes.
package durable

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/dgraph-io/badger/v4"
)

// Sizes are a store's memory: badger's memtable, value-log file and block
// cache. A transaction may be at most 15 % of a memtable, which must stay
// above badger's 1 MiB value threshold (so at least 8 MiB).
type Sizes struct {
	MemTable, ValueLogFile, BlockCache int64
}

// Options are badger's options for a durable store in dir: every commit
// syncs the WAL before it returns (SyncWrites), conflict detection is off
// (one writer per key: nothing to detect, and no read-set tracking on
// every commit), one version per key, badger's process-global metrics off
// (each store exports its own), and its log lines into log.
func Options(dir string, s Sizes, log *slog.Logger) badger.Options {
	return badger.DefaultOptions(dir).
		WithSyncWrites(true).
		WithDetectConflicts(false).
		WithNumVersionsToKeep(1).
		WithMemTableSize(s.MemTable).
		WithValueLogFileSize(s.ValueLogFile).
		WithBlockCacheSize(s.BlockCache).
		WithMetricsEnabled(false).
		WithLogger(logger{log})
}

// logger forwards badger's log lines to slog. badger is chatty at INFO
// (compactions, replay), so INFO goes to Debug.
type logger struct{ l *slog.Logger }

func (b logger) Errorf(f string, a ...any)   { b.log(slog.LevelError, f, a) }
func (b logger) Warningf(f string, a ...any) { b.log(slog.LevelWarn, f, a) }
func (b logger) Infof(f string, a ...any)    { b.log(slog.LevelDebug, f, a) }
func (b logger) Debugf(f string, a ...any)   { b.log(slog.LevelDebug, f, a) }

func (b logger) log(level slog.Level, f string, a []any) {
	ctx := context.Background()
	if !b.l.Enabled(ctx, level) {
		return
	}
	b.l.Log(ctx, level, strings.TrimSpace(fmt.Sprintf(f, a...)), "component", "badger")
}
