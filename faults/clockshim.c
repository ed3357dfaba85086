/* Dispatch Kit clock shim: shifts the wall clock of one process tree, live, and nothing else.
 *
 * Interposes clock_gettime (CLOCK_REALTIME, CLOCK_REALTIME_COARSE, CLOCK_TAI only), gettimeofday,
 * time and timespec_get. CLOCK_MONOTONIC, CLOCK_BOOTTIME and every sleep/wait call are untouched, so
 * unlike libfaketime this cannot break time.sleep, Event.wait or libevent.
 *
 * Control file ($DK_CLOCK_FILE): "offset_ns rate_ppb anchor_ns\n" (integers). Fake wall time is
 *   real + offset_ns + rate_ppb * 1e-9 * (real - anchor_ns)
 * The file is replaced atomically (rename) by the controller; it is re-stat'ed at most every
 * CHECK_NS of monotonic time and re-read when its inode, size or mtime changed.
 * No malloc, no stdio, no locale: safe to call from anywhere clock_gettime is.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define CHECK_NS 2000000LL /* 2 ms */

typedef int (*cg_fn)(clockid_t, struct timespec *);
typedef int (*gtod_fn)(struct timeval *, void *);

static cg_fn real_cg;
static gtod_fn real_gtod;
static char ctl_path[4096];
static int ctl_enabled = -1; /* -1 unknown, 0 no file, 1 file set */

static int64_t st_offset, st_rate, st_anchor;  /* accessed with __atomic */
static int64_t last_check = -CHECK_NS * 2;
static ino_t last_ino;
static off_t last_size = -1;
static int64_t last_mtime;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static int raw_cg(clockid_t clk, struct timespec *ts) {
    if (real_cg) return real_cg(clk, ts);
    return (int)syscall(SYS_clock_gettime, clk, ts);
}

static void init(void) {
    if (!real_cg) real_cg = (cg_fn)dlsym(RTLD_NEXT, "clock_gettime");
    if (!real_gtod) real_gtod = (gtod_fn)dlsym(RTLD_NEXT, "gettimeofday");
    if (ctl_enabled < 0) {
        const char *p = getenv("DK_CLOCK_FILE");
        if (p && *p && strlen(p) < sizeof(ctl_path)) {
            memcpy(ctl_path, p, strlen(p) + 1);
            ctl_enabled = 1;
        } else {
            ctl_enabled = 0;
        }
    }
}

__attribute__((constructor)) static void ctor(void) { init(); }

static const char *parse_i64(const char *s, const char *end, int64_t *out) {
    while (s < end && (*s == ' ' || *s == '\t' || *s == '\n')) s++;
    int neg = 0;
    if (s < end && (*s == '-' || *s == '+')) { neg = (*s == '-'); s++; }
    if (s >= end || *s < '0' || *s > '9') return NULL;
    int64_t v = 0;
    while (s < end && *s >= '0' && *s <= '9') { v = v * 10 + (*s - '0'); s++; }
    *out = neg ? -v : v;
    return s;
}

static void reload(void) {
    int fd = open(ctl_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    char buf[256];
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0) return;
    const char *p = buf, *end = buf + n;
    int64_t off, rate, anchor;
    if (!(p = parse_i64(p, end, &off))) return;
    if (!(p = parse_i64(p, end, &rate))) return;
    if (!(p = parse_i64(p, end, &anchor))) return;
    __atomic_store_n(&st_offset, off, __ATOMIC_RELAXED);
    __atomic_store_n(&st_rate, rate, __ATOMIC_RELAXED);
    __atomic_store_n(&st_anchor, anchor, __ATOMIC_RELAXED);
}

static void maybe_refresh(void) {
    if (ctl_enabled < 0) init();
    if (ctl_enabled != 1) return;
    struct timespec m;
    if (raw_cg(CLOCK_MONOTONIC, &m) != 0) return;
    int64_t now = (int64_t)m.tv_sec * 1000000000LL + m.tv_nsec;
    if (now - __atomic_load_n(&last_check, __ATOMIC_RELAXED) < CHECK_NS) return;
    if (pthread_mutex_trylock(&lock) != 0) return; /* another thread is refreshing */
    last_check = now;
    struct stat st;
    if (stat(ctl_path, &st) == 0) {
        int64_t mt = (int64_t)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
        if (st.st_ino != last_ino || st.st_size != last_size || mt != last_mtime) {
            last_ino = st.st_ino;
            last_size = st.st_size;
            last_mtime = mt;
            reload();
        }
    }
    pthread_mutex_unlock(&lock);
}

static int is_wall(clockid_t clk) {
    return clk == CLOCK_REALTIME || clk == CLOCK_REALTIME_COARSE
#ifdef CLOCK_TAI
           || clk == CLOCK_TAI
#endif
        ;
}

static void shift(struct timespec *ts) {
    maybe_refresh();
    int64_t off = __atomic_load_n(&st_offset, __ATOMIC_RELAXED);
    int64_t rate = __atomic_load_n(&st_rate, __ATOMIC_RELAXED);
    int64_t real = (int64_t)ts->tv_sec * 1000000000LL + ts->tv_nsec;
    if (rate != 0) {
        int64_t anchor = __atomic_load_n(&st_anchor, __ATOMIC_RELAXED);
        off += (int64_t)((double)rate * 1e-9 * (double)(real - anchor));
    }
    int64_t fake = real + off;
    int64_t sec = fake / 1000000000LL, nsec = fake % 1000000000LL;
    if (nsec < 0) { nsec += 1000000000LL; sec -= 1; }
    ts->tv_sec = (time_t)sec;
    ts->tv_nsec = (long)nsec;
}

int clock_gettime(clockid_t clk, struct timespec *ts) {
    if (!real_cg) init();
    int r = raw_cg(clk, ts);
    if (r == 0 && is_wall(clk)) shift(ts);
    return r;
}

int gettimeofday(struct timeval *tv, void *tz) {
    if (!real_gtod) init();
    if (tz && real_gtod) {
        struct timeval dummy;
        real_gtod(&dummy, tz);
    }
    struct timespec ts;
    int r = clock_gettime(CLOCK_REALTIME, &ts);
    if (r != 0) return r;
    tv->tv_sec = ts.tv_sec;
    tv->tv_usec = ts.tv_nsec / 1000;
    return 0;
}

time_t time(time_t *t) {
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0) return (time_t)-1;
    if (t) *t = ts.tv_sec;
    return ts.tv_sec;
}

int timespec_get(struct timespec *ts, int base) {
    if (base != TIME_UTC) return 0;
    if (clock_gettime(CLOCK_REALTIME, ts) != 0) return 0;
    return base;
}
