// A reader-writer lock that lets a waiting writer in before readers that come after it.
// std::shared_mutex on glibc prefers readers: under a steady stream of overlapping readers (a
// thousand nodes' heartbeats and session messages reading the store) a writer can wait for
// seconds, and the store's writer is the raft node applying entries, whose ticks and
// heartbeats wait behind it. Not recursive: a thread holding it shared must not take it again.
#pragma once

#include <pthread.h>

#include <system_error>

namespace skep {

class WriterFirstMutex {
 public:
  WriterFirstMutex() {
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    const int rc = pthread_rwlock_init(&lock_, &attr);
    pthread_rwlockattr_destroy(&attr);
    if (rc != 0) throw std::system_error(rc, std::generic_category(), "pthread_rwlock_init");
  }
  ~WriterFirstMutex() { pthread_rwlock_destroy(&lock_); }
  WriterFirstMutex(const WriterFirstMutex&) = delete;
  WriterFirstMutex& operator=(const WriterFirstMutex&) = delete;

  void lock() { Check(pthread_rwlock_wrlock(&lock_)); }
  bool try_lock() { return pthread_rwlock_trywrlock(&lock_) == 0; }
  void unlock() { pthread_rwlock_unlock(&lock_); }
  void lock_shared() { Check(pthread_rwlock_rdlock(&lock_)); }
  bool try_lock_shared() { return pthread_rwlock_tryrdlock(&lock_) == 0; }
  void unlock_shared() { pthread_rwlock_unlock(&lock_); }

 private:
  static void Check(int rc) {
    if (rc != 0) throw std::system_error(rc, std::generic_category(), "pthread_rwlock");
  }
  pthread_rwlock_t lock_;
};

}  // namespace skep
