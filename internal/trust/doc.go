// Package trust decides whether the core may believe a file or folder
// (guarantee G9): like ssh's StrictModes, what the core runs, loads or
// reads its own state from must be its own and writable by no one else,
// and so must every folder on the way to it, or another user could swap
// it for something of their own and have the core run that.
//
// The rules, for the effective uid of the process (the core's user):
//
//   - A folder the core keeps its state in (the store, the binary cache,
//     the control folder) is owned by the core's user and not writable by
//     group or others. One that does not exist yet is created 0700, which
//     is safe when its parent is.
//   - Every folder on the way to it, symbolic links resolved (and the
//     folders holding the links), is owned by root or the core's user and
//     is not writable by group or others, unless it has the sticky bit
//     (like /tmp), where no one can rename or remove what is not theirs.
//   - A file the core wrote itself and reads back (a cached module, the
//     upgrade journal) is opened without following symbolic links and must
//     be a regular file owned by the core's user, not writable by group or
//     others.
//   - A file the core is given (a plugin binary to copy into its cache, the
//     config) is owned by the core's user or root and not writable by group
//     or others; the check is made on the open file, so what is checked is
//     what is read.
//
// Every refusal is an *Error that names the thing at fault, says what is
// wrong with it and how to fix it (`chmod go-w PATH`, `chown UID PATH`),
// and matches ErrUntrusted with errors.Is. The package imports no other
// graft package, so every layer can use it.
package trust
