package cli

import "redback/internal/restore"

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
