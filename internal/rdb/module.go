package rdb

// Module value opcodes (RDB_MODULE_OPCODE_*).
const (
	moduleOpEOF    = 0
	moduleOpSInt   = 1
	moduleOpUInt   = 2
	moduleOpFloat  = 3
	moduleOpDouble = 4
	moduleOpString = 5
)

const moduleNameChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// ModuleName decodes the 9-character module name from a 64-bit module id
// (the low 10 bits are the encoding version).
func ModuleName(id uint64) string {
	var b [9]byte
	id >>= 10
	for i := 8; i >= 0; i-- {
		b[i] = moduleNameChars[id&63]
		id >>= 6
	}
	return string(b[:])
}

// ModuleID builds a module id from a 9-character name (from the module
// name alphabet) and an encoding version (0–1023); ok is false otherwise.
func ModuleID(name string, encver int) (id uint64, ok bool) {
	if len(name) != 9 || encver < 0 || encver > 1023 {
		return 0, false
	}
	for i := range 9 {
		j := -1
		for k := range len(moduleNameChars) {
			if moduleNameChars[k] == name[i] {
				j = k
				break
			}
		}
		if j < 0 {
			return 0, false
		}
		id = id<<6 | uint64(j)
	}
	return id<<10 | uint64(encver), true
}

// module walks a type-7 value: the module id, then tagged values until the
// EOF tag. It returns the module name.
func (d *decoder) module() (string, error) {
	id, err := d.length("module id")
	if err != nil {
		return "", err
	}
	return ModuleName(id), d.moduleTags()
}

// moduleTags walks tagged module values until the EOF tag.
func (d *decoder) moduleTags() error {
	return walkModuleTags(d.at, d.length, d.fixed, d.skipStr)
}

// walkModuleTags walks tagged module values (RDB_MODULE_OPCODE_*) until
// the EOF tag, for a decoder (a value in memory) and the Reader (capturing
// a value from a stream) alike: at is the current offset, length reads a
// plain length, fixed n bytes and skipStr an RDB string.
func walkModuleTags(at func() int, length func(what string) (uint64, error), fixed func(n int) ([]byte, error), skipStr func() error) error {
	for {
		off := at()
		op, err := length("module opcode")
		if err != nil {
			return err
		}
		switch op {
		case moduleOpEOF:
			return nil
		case moduleOpSInt, moduleOpUInt:
			_, err = length("module integer")
		case moduleOpFloat:
			_, err = fixed(4)
		case moduleOpDouble:
			_, err = fixed(8)
		case moduleOpString:
			err = skipStr()
		default:
			return errAt(off, "unknown module opcode %d", op)
		}
		if err != nil {
			return err
		}
	}
}
