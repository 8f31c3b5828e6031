#include <check.h>
#include "cksuite.h"
#include "io.h"
int main(void) { return 0; }
