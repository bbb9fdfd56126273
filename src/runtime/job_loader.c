/*
 * eddy — loading job shared objects (eddy/runner.h).
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * Every failure gets one line that says what the file is and what to do:
 * a missing file, a file that is not a shared object, a shared object that
 * is not an eddy job, a job built for another ABI, a build function that
 * fails. Crashes inside the job's code are reported by the crash guard,
 * which knows the phase ("loading", "building") from eddy__crash_set_phase.
 */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "eddy/runner.h"
#include "runtime/runtime.h"

struct eddy_job_s {
    void *jb_handle;
    const eddy_job_entry_t *jb_entry;
    char *jb_path;
};

int eddy_job_open(const char *path, eddy_job_t **out, eddy_error_t *err)
{
    struct stat sb;
    char resolved[PATH_MAX];
    *out = NULL;
    if (path == NULL || path[0] == '\0') {
        return eddy_error_set(err, EDDY_ERR_INVALID, "no job file given");
    }
    if (stat(path, &sb) != 0) {
        return eddy_error_set(err, EDDY_ERR_NOT_FOUND,
                              "cannot open job '%s': %s", path,
                              strerror(errno));
    }
    if (S_ISDIR(sb.st_mode)) {
        return eddy_error_set(err, EDDY_ERR_NOT_A_JOB,
                              "'%s' is a directory, not a job shared object",
                              path);
    }
    /* dlopen searches the library path for names without a slash; a job is
     * always a file path, so make it one. */
    if (realpath(path, resolved) == NULL) {
        return eddy_error_set(err, EDDY_ERR_NOT_FOUND,
                              "cannot open job '%s': %s", path,
                              strerror(errno));
    }
    eddy__crash_set_phase("loading the job's shared object");
    dlerror();
    void *h = dlopen(resolved, RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) {
        const char *why = dlerror();
        const char *colon = why != NULL ? strrchr(why, ':') : NULL;
        return eddy_error_set(err, EDDY_ERR_NOT_A_JOB,
                              "'%s' is not a loadable shared object:%s", path,
                              colon != NULL ? colon + 1 : " unknown reason");
    }
    const eddy_job_entry_t *entry = dlsym(h, EDDY_JOB_SYMBOL);
    if (entry == NULL) {
        dlclose(h);
        return eddy_error_set(err, EDDY_ERR_NOT_A_JOB,
                              "'%s' is not an eddy job: it has no entry point "
                              "(declare one with EDDY_JOB(name, build))",
                              path);
    }
    if (entry->abi_version != EDDY_ABI_VERSION) {
        int v = entry->abi_version;
        dlclose(h);
        return eddy_error_set(err, EDDY_ERR_NOT_A_JOB,
                              "'%s' was built for job ABI %d, but this eddy "
                              "runs ABI %d: rebuild the job against this "
                              "eddy's headers",
                              path, v, EDDY_ABI_VERSION);
    }
    if (entry->build == NULL) {
        dlclose(h);
        return eddy_error_set(err, EDDY_ERR_NOT_A_JOB,
                              "'%s' is not an eddy job: its entry point has no "
                              "build function",
                              path);
    }
    eddy_job_t *job = eddy__calloc(1, sizeof(*job));
    job->jb_handle = h;
    job->jb_entry = entry;
    job->jb_path = eddy__strdup(path);
    *out = job;
    return 0;
}

const char *eddy_job_name(const eddy_job_t *job)
{
    const char *n = job->jb_entry->name;
    return n != NULL && n[0] != '\0' ? n : "job";
}

int eddy_job_build(eddy_job_t *job, eddy_env_t *env, int argc, char **argv,
                   eddy_error_t *err)
{
    eddy_env_set_name(env, eddy_job_name(job));
    eddy__crash_set_phase("building the job's graph (in its EDDY_JOB build "
                          "function)");
    int rc = job->jb_entry->build(env, argc, argv);
    eddy__crash_set_phase("running the job");
    if (env->e_failed) {
        return eddy_error_set(err, EDDY_ERR_INVALID, "%s", env->e_error.msg);
    }
    if (rc != 0) {
        return eddy_error_set(err, EDDY_ERR_INVALID,
                              "the job's build function returned %d without "
                              "a message (report errors with eddy_env_fail)",
                              rc);
    }
    return 0;
}

void eddy_job_close(eddy_job_t *job)
{
    if (job == NULL) {
        return;
    }
    dlclose(job->jb_handle);
    free(job->jb_path);
    free(job);
}

void eddy_env_set_default_parallelism(eddy_env_t *env, int parallelism)
{
    if (env != NULL && parallelism > 0) {
        env->e_default_parallelism = parallelism;
    }
}

void eddy_crash_guard_install(void)
{
    eddy__crash_guard_install();
}
