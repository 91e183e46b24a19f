// The checklist of "Adding an op" (README), enforced: every registered op has a row in the README's
// op table. (Its PyTorch fixture is enforced by ReferenceCoverage in tests/ops/reference_test.cpp.)
#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "tapegrad.h"

namespace tg {
namespace {

// The op names the README's op table shows: every `name` or `name(…)` in a row's first column.
std::set<std::string> readme_table_ops() {
  std::ifstream file(std::string(TAPEGRAD_REFERENCE_DIR) + "/../../README.md");
  std::stringstream text;
  text << file.rdbuf();
  const std::string readme = text.str();
  const std::size_t begin = readme.find("\n## Ops\n");
  const std::size_t end = readme.find("\n## ", begin + 1);
  std::istringstream section(readme.substr(begin, end - begin));
  std::set<std::string> names;
  for (std::string line; std::getline(section, line);) {
    if (line.rfind("| ", 0) != 0) continue;
    const std::string first_column = line.substr(0, line.find(" | ", 2));
    for (std::size_t open = first_column.find('`'); open != std::string::npos;) {
      const std::size_t close = first_column.find('`', open + 1);
      if (close == std::string::npos) break;
      const std::string code = first_column.substr(open + 1, close - open - 1);
      names.insert(code.substr(0, code.find('(')));
      open = first_column.find('`', close + 1);
    }
  }
  return names;
}

// "softmax(axis=-1)" -> "softmax", "pow(x, 0)" -> "pow": the registry names samples of an op.
std::string base_name(const std::string& registered) {
  return registered.substr(0, registered.find_first_of("( "));
}

TEST(OpChecklist, EveryRegisteredOpHasARowInTheReadmeTable) {
  const std::set<std::string> documented = readme_table_ops();
  ASSERT_GT(documented.size(), 20u) << "the README's op table was not found";
  std::set<std::string> missing;
  for (const OpRegistration& op : op_registry().ops()) {
    if (!documented.contains(base_name(op.name))) missing.insert(base_name(op.name));
  }
  EXPECT_TRUE(missing.empty()) << "registered ops with no row in the README's op table: "
                               << fmt::format("{}", fmt::join(missing, ", "));
}

}  // namespace
}  // namespace tg
