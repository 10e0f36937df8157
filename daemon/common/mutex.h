// Locks the compiler checks. Clang's thread-safety analysis (-Wthread-safety, on in the clang
// build of deploy/test.sh) proves that state marked SKEP_GUARDED_BY(mu) is only touched with
// `mu` held and that a function marked SKEP_REQUIRES(mu) is only called with it; with other
// compilers the marks are empty. std::mutex carries no marks of its own, hence Mutex.
//
// State that a strand owns instead of a lock is said so where it is declared ("on the
// strand"): the analysis cannot see executors, so those comments are the contract.
#pragma once

#include <condition_variable>
#include <mutex>

#if defined(__clang__)
#define SKEP_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define SKEP_THREAD_ANNOTATION(x)
#endif

#define SKEP_CAPABILITY(x) SKEP_THREAD_ANNOTATION(capability(x))
#define SKEP_SCOPED_CAPABILITY SKEP_THREAD_ANNOTATION(scoped_lockable)
#define SKEP_GUARDED_BY(x) SKEP_THREAD_ANNOTATION(guarded_by(x))
#define SKEP_PT_GUARDED_BY(x) SKEP_THREAD_ANNOTATION(pt_guarded_by(x))
#define SKEP_REQUIRES(...) SKEP_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define SKEP_REQUIRES_SHARED(...) SKEP_THREAD_ANNOTATION(requires_shared_capability(__VA_ARGS__))
#define SKEP_ACQUIRE(...) SKEP_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define SKEP_ACQUIRE_SHARED(...) SKEP_THREAD_ANNOTATION(acquire_shared_capability(__VA_ARGS__))
#define SKEP_RELEASE(...) SKEP_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define SKEP_RELEASE_SHARED(...) SKEP_THREAD_ANNOTATION(release_shared_capability(__VA_ARGS__))
#define SKEP_RELEASE_GENERIC(...) SKEP_THREAD_ANNOTATION(release_generic_capability(__VA_ARGS__))
#define SKEP_TRY_ACQUIRE(...) SKEP_THREAD_ANNOTATION(try_acquire_capability(__VA_ARGS__))
#define SKEP_EXCLUDES(...) SKEP_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
#define SKEP_RETURN_CAPABILITY(x) SKEP_THREAD_ANNOTATION(lock_returned(x))
#define SKEP_NO_THREAD_SAFETY_ANALYSIS SKEP_THREAD_ANNOTATION(no_thread_safety_analysis)

namespace skep {

class SKEP_CAPABILITY("mutex") Mutex {
 public:
  void lock() SKEP_ACQUIRE() { mu_.lock(); }
  void unlock() SKEP_RELEASE() { mu_.unlock(); }
  bool try_lock() SKEP_TRY_ACQUIRE(true) { return mu_.try_lock(); }
  // Tells the analysis that the caller holds it (where it cannot see so, as in a callback that
  // runs under it).
  void AssertHeld() const SKEP_THREAD_ANNOTATION(assert_capability(this)) {}

 private:
  friend class CondVar;
  std::mutex mu_;
};

// Holds a Mutex for a scope; may release it early (and take it again) where a caller must not
// hold it across a call.
class SKEP_SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex& mu) SKEP_ACQUIRE(mu) : mu_(mu) { mu_.lock(); }
  ~MutexLock() SKEP_RELEASE() {
    if (held_) mu_.unlock();
  }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

  void Unlock() SKEP_RELEASE() {
    mu_.unlock();
    held_ = false;
  }
  void Lock() SKEP_ACQUIRE() {
    mu_.lock();
    held_ = true;
  }

 private:
  friend class CondVar;
  Mutex& mu_;
  bool held_ = true;
};

// A condition variable over a Mutex held by a MutexLock.
class CondVar {
 public:
  template <class Predicate>
  void Wait(MutexLock& lock, Predicate ready) {
    std::unique_lock inner(lock.mu_.mu_, std::adopt_lock);
    cv_.wait(inner, std::move(ready));
    inner.release();
  }
  template <class Rep, class Period, class Predicate>
  bool WaitFor(MutexLock& lock, std::chrono::duration<Rep, Period> timeout, Predicate ready) {
    std::unique_lock inner(lock.mu_.mu_, std::adopt_lock);
    const bool ok = cv_.wait_for(inner, timeout, std::move(ready));
    inner.release();
    return ok;
  }
  void NotifyAll() { cv_.notify_all(); }
  void NotifyOne() { cv_.notify_one(); }

 private:
  std::condition_variable cv_;
};

}  // namespace skep
