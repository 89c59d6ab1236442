package cli

import (
	"github.com/spf13/pflag"

	"redback/internal/restore"
)

// keyFlags are the values of the flags restore and migrate share: which
// keys go where (--match, --db, --map-db), what happens to keys the target
// already holds (--conflict) and over how many connections (--parallel).
type keyFlags struct {
	Conflict string
	Parallel int
	Match    []string
	DBs      []int
	MapDB    []string
}

// addFlags registers the shared flags; verb ("copy", "restore") goes
// into their help, with the default and help of --parallel.
func (k *keyFlags) addFlags(f *pflag.FlagSet, verb string, parallel int, parallelHelp string) {
	f.StringVar(&k.Conflict, "conflict", "fail", "keys that already exist on the target: fail (refuse non-empty target dbs before writing), replace, skip")
	f.StringArrayVar(&k.Match, "match", nil, verb+" only keys matching this Redis glob (repeatable)")
	f.IntSliceVar(&k.DBs, "db", nil, verb+" only this source db (repeatable)")
	f.StringArrayVar(&k.MapDB, "map-db", nil, verb+" source db FROM into target db TO, as FROM:TO (repeatable)")
	f.IntVar(&k.Parallel, "parallel", parallel, parallelHelp)
}

// parse validates the shared flags; verb ("restore", "migrate") goes into
// the Try: examples of usage errors.
func (k keyFlags) parse(verb string) (restore.Conflict, restore.Filter, error) {
	try := "redback " + verb + " ..."
	var f restore.Filter
	c, err := restore.ParseConflict(k.Conflict)
	if err != nil {
		return c, f, usagef(try+" --conflict replace", "%v", err)
	}
	if k.Parallel < 1 || k.Parallel > 256 {
		return c, f, usagef(try+" --parallel 4", "--parallel must be between 1 and 256, got %d", k.Parallel)
	}
	f.Match = k.Match
	for _, d := range k.DBs {
		if d < 0 {
			return c, f, usagef(try+" --db 0 --db 2", "--db must be >= 0, got %d", d)
		}
	}
	f.DBs = k.DBs
	for _, m := range k.MapDB {
		from, to, err := restore.ParseMapDB(m)
		if err != nil {
			return c, f, usagef(try+" --map-db 0:3", "%v", err)
		}
		if f.MapDB == nil {
			f.MapDB = map[int]int{}
		}
		if prev, dup := f.MapDB[from]; dup && prev != to {
			return c, f, usagef(try+" --map-db 0:3", "--map-db maps db %d twice (to %d and to %d)", from, prev, to)
		}
		f.MapDB[from] = to
	}
	return c, f, nil
}
