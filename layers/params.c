/* Parameter lists: a growable array of (name, tensor). */
#include <string.h>

#include "../tensor/internal.h"
#include "layers.h"

int sg_params_add(sg_param_list *list, const char *name, sg_tensor *t) {
    if (!list || !t || !name)
        return -1;
    if (strlen(name) >= sizeof list->items[0].name) {
        sg_error(t->ctx, "sg_params_add: name '%s' is longer than %zu characters", name,
                 sizeof list->items[0].name - 1);
        return -1;
    }
    if (sg_params_find(list, name)) {
        sg_error(t->ctx, "sg_params_add: duplicate parameter name '%s'", name);
        return -1;
    }
    if (list->n == list->cap) {
        int nc = list->cap ? 2 * list->cap : 16;
        sg_param_entry *ni = sg_realloc(list->items, (size_t)nc * sizeof *ni);
        if (!ni) {
            sg_error(t->ctx, "sg_params_add: out of memory");
            return -1;
        }
        list->items = ni;
        list->cap = nc;
    }
    sg_param_entry *e = &list->items[list->n++];
    snprintf(e->name, sizeof e->name, "%s", name);
    e->tensor = t;
    return 0;
}

sg_tensor *sg_params_find(const sg_param_list *list, const char *name) {
    for (int i = 0; list && name && i < list->n; i++)
        if (!strcmp(list->items[i].name, name))
            return list->items[i].tensor;
    return NULL;
}

void sg_params_zero_grad(sg_param_list *list) {
    for (int i = 0; list && i < list->n; i++)
        sg_zero_grad(list->items[i].tensor);
}

int64_t sg_params_count(const sg_param_list *list) {
    int64_t n = 0;
    for (int i = 0; list && i < list->n; i++)
        n += sg_numel(list->items[i].tensor);
    return n;
}

void sg_params_clear(sg_param_list *list) {
    if (!list)
        return;
    sg_free(list->items);
    list->items = NULL;
    list->n = list->cap = 0;
}
