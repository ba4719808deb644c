/* ncurses for Swift: wide-character API on, macros and globals as functions. */
#ifndef SMPTOP_CNCURSES_SHIM_H
#define SMPTOP_CNCURSES_SHIM_H
#ifndef NCURSES_WIDECHAR
#define NCURSES_WIDECHAR 1 /* SwiftPM drops pkg-config's -D_XOPEN_SOURCE=600 */
#endif
#include <locale.h>
#include <ncurses.h>
static inline WINDOW *nc_stdscr(void) { return stdscr; }
static inline int nc_lines(void) { return LINES; }
static inline int nc_cols(void) { return COLS; }
#endif
