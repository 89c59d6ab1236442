package runbook

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
)

// Placeholder is one row of a runbook's placeholder table.
type Placeholder struct {
	Name    string // "{{PORT}}"
	Meaning string
	Example string
}

// Block is one fenced shell block.
type Block struct {
	Line  int      // line of the opening fence (1-based)
	Paths []string // decision paths it belongs to; none: every path
	Code  string
}

// Runbook is a parsed runbook.
type Runbook struct {
	Placeholders []Placeholder
	Blocks       []Block
}

var (
	rowRe  = regexp.MustCompile(`^\|\s*` + "`?" + `(\{\{[A-Z_]+\}\})` + "`?" + `\s*\|([^|]*)\|([^|]*)\|\s*$`)
	nameRe = regexp.MustCompile(`\{\{[A-Z_]+\}\}`)
)

// Parse reads a runbook. Placeholders come from table rows whose first cell
// is {{NAME}}; blocks from "```sh" fences (with an optional "path=a,b").
func Parse(r io.Reader) (*Runbook, error) {
	rb := &Runbook{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var cur *Block
	var code strings.Builder
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if cur != nil {
			if strings.TrimSpace(line) == "```" {
				cur.Code = code.String()
				rb.Blocks = append(rb.Blocks, *cur)
				cur = nil
				continue
			}
			code.WriteString(line)
			code.WriteByte('\n')
			continue
		}
		if info, ok := strings.CutPrefix(line, "```"); ok {
			f := strings.Fields(info)
			if len(f) == 0 || f[0] != "sh" {
				// illustrative block: skip to its end
				for n++; sc.Scan(); n++ {
					if strings.TrimSpace(sc.Text()) == "```" {
						break
					}
				}
				continue
			}
			cur = &Block{Line: n}
			code.Reset()
			for _, a := range f[1:] {
				v, ok := strings.CutPrefix(a, "path=")
				if !ok {
					return nil, fmt.Errorf("line %d: unknown fence attribute %q (want path=a,b)", n, a)
				}
				cur.Paths = strings.Split(v, ",")
			}
			continue
		}
		if m := rowRe.FindStringSubmatch(line); m != nil {
			rb.Placeholders = append(rb.Placeholders, Placeholder{Name: m[1], Meaning: strings.TrimSpace(m[2]), Example: strings.TrimSpace(m[3])})
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if cur != nil {
		return nil, fmt.Errorf("line %d: unterminated ```sh block", cur.Line)
	}
	return rb, nil
}

// Guard is how every block of a runbook starts: a subshell that stops at
// the first failing command. The block ends with ")".
const Guard = "(\nset -euo pipefail\n"

// CheckGuards reports every block that does not run in Guard ... ")": an
// operator pasting it would go on after a failed step.
func (rb *Runbook) CheckGuards() error {
	var errs []error
	for _, b := range rb.Blocks {
		if !strings.HasPrefix(b.Code, Guard) || !strings.HasSuffix(b.Code, "\n)\n") {
			errs = append(errs, fmt.Errorf("block at line %d does not stop at the first failure: start it with \"(\" and \"set -euo pipefail\" lines and end it with \")\"", b.Line))
		}
	}
	return errors.Join(errs...)
}

// Paths lists the decision paths named by the blocks, in order of first use.
func (rb *Runbook) Paths() []string {
	var out []string
	for _, b := range rb.Blocks {
		for _, p := range b.Paths {
			if !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	return out
}

// Script returns the blocks of path (every block when path is ""), with the
// placeholders replaced by vars. Every placeholder used must be in the table
// and in vars.
func (rb *Runbook) Script(path string, vars map[string]string) ([]Block, error) {
	table := map[string]bool{}
	for _, p := range rb.Placeholders {
		table[p.Name] = true
	}
	var out []Block
	for _, b := range rb.Blocks {
		if path != "" && len(b.Paths) > 0 && !slices.Contains(b.Paths, path) {
			continue
		}
		var err error
		code := nameRe.ReplaceAllStringFunc(b.Code, func(name string) string {
			v, ok := vars[name]
			switch {
			case !table[name]:
				err = fmt.Errorf("block at line %d uses %s, which is not in the placeholder table", b.Line, name)
			case !ok:
				err = fmt.Errorf("block at line %d uses %s, which the test does not set", b.Line, name)
			}
			return v
		})
		if err != nil {
			return nil, err
		}
		b.Code = code
		out = append(out, b)
	}
	return out, nil
}
