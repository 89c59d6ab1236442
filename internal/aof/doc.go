// Package aof reads, writes and checks Redis append-only files.
//
//   - Reader streams the commands (RESP arrays of bulk strings) and the
//     '#' annotations (#TS:<unix>) of one AOF file, with the exact byte
//     offset of each, in bounded memory: hostile lengths are rejected
//     before anything is allocated for them. It is resp.Reader.ReadRecord
//     (the one command reader, with its limits) naming the file in errors.
//   - Writer writes commands, SELECT when the db changes and #TS
//     annotations, producing files redis-server and redis-check-aof load.
//   - ParseManifest and (*Manifest).WriteTo read and write the multi-part
//     AOF manifest (Redis 7.0+) with the validation rules of aof.c.
//   - Check reproduces redis-check-aof 7.0.15: the same verdict, ok_up_to,
//     ok_up_to_line and, with fixing, byte-identical truncation. For that it
//     parses as the tool does (fgets, strtol: looser than Reader, which is
//     why it does not use it) and uses Reader only to probe what follows a
//     break; it also
//     tells a torn tail (fixable by truncation) from corruption in the
//     middle (which a truncation would silently turn into data loss).
//
// Damage is reported as *CorruptionError (file, offset, line), whose
// VerificationFailed method maps it to exit code 3 in the CLI.
package aof
