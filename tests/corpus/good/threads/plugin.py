"""Positive control: threads work under seccomp (clone3 answers ENOSYS, clone with CLONE_THREAD)."""

import threading


def inspect(segments, ctx):
    results = [None] * 4

    def work(i):
        results[i] = sum(range(i * 1000))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results
