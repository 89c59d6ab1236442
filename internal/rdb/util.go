package rdb

import "strconv"

func itoa(i int) string                  { return strconv.Itoa(i) }
func utoa(u uint64) string               { return strconv.FormatUint(u, 10) }
func appendInt(b []byte, v int64) []byte { return strconv.AppendInt(b, v, 10) }
