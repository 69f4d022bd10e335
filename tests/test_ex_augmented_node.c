/* tests/test_ex_augmented_node.c - examples/augmented_node.c: ANODE's claim on
   the disk-in-annulus data. With the same 60 iterations, zero and learned
   augmentation and the second-order ODE reach a far lower loss than the
   plain 2-dimensional flow (with or without t concatenated), which cannot
   separate the classes; every mode runs. */
#define EXAMPLE_NO_MAIN
#include "../examples/augmented_node.c"   /* first: it sets _POSIX_C_SOURCE */
#include "nde_test.h"

static aug_result run_mode(const char *mode) {
    aug_args a;
    aug_result r;
    aug_args_default(&a);
    a.n = 128; a.niters = 60; a.quiet = 1; a.mode = mode;
    CHECK(aug_run(&a, &r) == 0);
    printf("  %-12s cross-entropy %.4f -> %.4f, accuracy %.1f%%\n", mode, r.first_loss, r.final_loss, 100 * r.accuracy);
    return r;
}

int main(void) {
    aug_result none = run_mode("none"), zero = run_mode("zero"), learned = run_mode("learned");
    aug_result second = run_mode("second_order"), depth = run_mode("depth"), control = run_mode("data_control");
    aug_args a;
    aug_result r;
    CHECK(none.first_loss > 0.5 && zero.first_loss > 0.5);
    CHECK(zero.final_loss < 0.05 && zero.accuracy == 1.0);
    CHECK(learned.final_loss < 0.05 && learned.accuracy == 1.0);
    CHECK(second.final_loss < 0.1);
    CHECK(control.final_loss < 0.1);                           /* one flow per input: not bound by the plane's topology */
    CHECK(none.final_loss > 0.15 && depth.final_loss > 0.15);   /* a flow of the plane cannot untangle the disk */
    CHECK(none.final_loss > 5 * zero.final_loss);
    aug_args_default(&a);
    a.mode = "sideways";
    CHECK(aug_run(&a, &r) == 2);
    return nde_test_finish("test_ex_augmented_node");
}
