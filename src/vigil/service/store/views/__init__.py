"""Read views of the store: one module per resource, each with one filter and one function per
listing, shared by the API (``service/api``) and the console (``service/ui``). Listings page by key
(``store.pagination.keyset_rows``)."""
