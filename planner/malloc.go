package planner

// #include <malloc.h>
import "C"

// ReleaseParserMemory gives back to the operating system what the C parser
// (libpg_query, through glibc's malloc) freed but glibc keeps: freed memory
// stays in per-thread arenas, so a burst of statements parsed on many
// threads would otherwise stay resident long after.
func ReleaseParserMemory() { C.malloc_trim(0) }
