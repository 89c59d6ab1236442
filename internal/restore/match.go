package restore

// Match reports whether key matches the glob pattern with the rules of
// Redis's stringmatchlen (KEYS, SCAN MATCH): '*' any run, '?' one byte,
// '[abc]', '[^abc]', '[a-z]' (reversed ranges allowed), and '\' escaping
// the next byte, inside and outside brackets. Matching is byte-wise and
// case-sensitive; an unterminated '[' matches as if closed at the end.
// The pattern "*" matches every key, the empty one included (as KEYS *).
func Match(pattern, key []byte) bool {
	if len(pattern) == 1 && pattern[0] == '*' {
		return true
	}
	skip := false
	return matchImpl(pattern, key, &skip)
}

func matchImpl(pat, str []byte, skipLonger *bool) bool {
	p, s := 0, 0
	for p < len(pat) && s < len(str) {
		switch pat[p] {
		case '*':
			for p+1 < len(pat) && pat[p+1] == '*' {
				p++
			}
			if p == len(pat)-1 {
				return true
			}
			for s < len(str) {
				if matchImpl(pat[p+1:], str[s:], skipLonger) {
					return true
				}
				if *skipLonger {
					return false
				}
				s++
			}
			*skipLonger = true
			return false
		case '?':
			s++
		case '[':
			p++
			not := p < len(pat) && pat[p] == '^'
			if not {
				p++
			}
			match := false
			c := int(int8(str[s]))
			for {
				if p >= len(pat) {
					p-- // unterminated: the outer p++ steps past the end
					break
				}
				if pat[p] == '\\' && len(pat)-p >= 2 {
					p++
					if pat[p] == str[s] {
						match = true
					}
				} else if pat[p] == ']' {
					break
				} else if len(pat)-p >= 3 && pat[p+1] == '-' {
					start, end := int(int8(pat[p])), int(int8(pat[p+2]))
					if start > end {
						start, end = end, start
					}
					p += 2
					if c >= start && c <= end {
						match = true
					}
				} else if pat[p] == str[s] {
					match = true
				}
				p++
			}
			if not {
				match = !match
			}
			if !match {
				return false
			}
			s++
		case '\\':
			if len(pat)-p >= 2 {
				p++
			}
			fallthrough
		default:
			if pat[p] != str[s] {
				return false
			}
			s++
		}
		p++
		if s == len(str) {
			for p < len(pat) && pat[p] == '*' {
				p++
			}
			break
		}
	}
	return p == len(pat) && s == len(str)
}
