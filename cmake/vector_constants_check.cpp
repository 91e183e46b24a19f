// Configure-time check (CMakeLists.txt): GCC 12.2 at -O3 with AVX-512 builds the constant
// vector {c, c, 0, 0} as a broadcast of c into every lane, so that std::vector<double>{1, 1, 0, 0}
// holds {1, 1, 1, 1}: silently wrong values in any code. Exits 0 when every pattern seen to be
// miscompiled comes out right.
#include <cstdint>
#include <vector>

template <class T>
__attribute__((noinline)) bool holds(const std::vector<T>& v, std::initializer_list<int> want) {
  if (v.size() != want.size()) return false;
  std::size_t i = 0;
  for (int w : want) {
    if (v[i++] != T(w)) return false;
  }
  return true;
}

int main() {
  const std::vector<double> d{1, 1, 0, 0};
  const std::vector<double> d8{3, 3, 3, 3, 0, 0, 0, 0};
  const std::vector<std::int64_t> i{1, 1, 0, 0};
  const std::vector<float> f{1, 1, 0, 0, 2, 2, 3, 3};
  std::vector<double> inserted;
  inserted.insert(inserted.end(), {2, 2, 0, 0});
  const bool right = holds(d, {1, 1, 0, 0}) && holds(d8, {3, 3, 3, 3, 0, 0, 0, 0}) &&
                     holds(i, {1, 1, 0, 0}) && holds(f, {1, 1, 0, 0, 2, 2, 3, 3}) &&
                     holds(inserted, {2, 2, 0, 0});
  return right ? 0 : 1;
}
