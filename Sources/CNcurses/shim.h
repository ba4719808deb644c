/* ncurses for Swift: wide-character API on, macros and globals as functions. */
#ifndef SMPTOP_CNCURSES_SHIM_H
#define SMPTOP_CNCURSES_SHIM_H
#ifndef NCURSES_WIDECHAR
#define NCURSES_WIDECHAR 1 /* SwiftPM drops pkg-config's -D_XOPEN_SOURCE=600 */
#endif
#include <langinfo.h>
#include <locale.h>
#include <ncurses.h>
#include <termios.h>
static inline WINDOW *nc_stdscr(void) { return stdscr; }
static inline int nc_lines(void) { return LINES; }
static inline int nc_cols(void) { return COLS; }
static inline int nc_colors(void) { return COLORS; }
/* Attribute macros (shift expressions Swift cannot import). */
static inline attr_t nc_A_NORMAL(void) { return A_NORMAL; }
static inline attr_t nc_A_BOLD(void) { return A_BOLD; }
static inline attr_t nc_A_REVERSE(void) { return A_REVERSE; }
static inline attr_t nc_A_DIM(void) { return A_DIM; }
static inline attr_t nc_A_UNDERLINE(void) { return A_UNDERLINE; }
static inline int nc_KEY_F(int n) { return KEY_F(n); }
static inline void nc_getmaxyx(WINDOW *w, int *y, int *x) { *y = getmaxy(w); *x = getmaxx(w); }
/* The locale's character set ("UTF-8", "ANSI_X3.4-1968"). */
static inline const char *nc_codeset(void) { return nl_langinfo(CODESET); }
#endif
