/*
 * not_a_job — a valid shared object that is not an eddy job: it exports a
 * function but no EDDY_JOB entry point.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 */
__attribute__((visibility("default"))) int not_a_job_answer(void);

int not_a_job_answer(void)
{
    return 42;
}
