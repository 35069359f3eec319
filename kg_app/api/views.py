"""The knowledge-graph API: search, a node's neighbourhood, and the read-only Cypher console."""
from __future__ import annotations

from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from kg_app import selectors
from kg_app.store import GraphStoreError, GraphUnavailable, get_graph_store
from trainer_app.api.permissions import IsSiteAdmin


class IsConsoleUser(IsSiteAdmin):
    message = "Only site admins can use the Cypher console: a query can read every project's nodes."


class GraphDown(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = ("The knowledge graph server is unreachable. The rest of Trainyard works; the graph "
                      "catches up when it is back.")
    default_code = "graph_unavailable"


def _with_store(read):
    with get_graph_store() as store:
        try:
            return read(store)
        except GraphUnavailable:
            raise GraphDown() from None


class SearchView(APIView):
    @extend_schema(parameters=[OpenApiParameter("q", str, required=True,
                                                description="a name (any part, any case), a node id or a label")],
                   responses=OpenApiTypes.OBJECT)
    def get(self, request):
        query = request.query_params.get("q", "").strip()
        if not query:
            raise ValidationError({"q": "Give ?q=<text>: part of a name, a node id such as run:42, or a label."})
        nodes = _with_store(lambda store: selectors.graph_search(store=store, user=request.user, query=query[:200]))
        return Response({"nodes": nodes})


class NeighbourhoodView(APIView):
    @extend_schema(parameters=[OpenApiParameter("skip", int, description="neighbours already shown ('show more')"),
                               OpenApiParameter("limit", int, description=f"at most "
                                                f"{selectors.NEIGHBOURHOOD_LIMIT * 4}")],
                   responses=OpenApiTypes.OBJECT)
    def get(self, request, key: str):
        skip, limit = request.query_params.get("skip", "0"), request.query_params.get("limit",
                                                                                      str(selectors.NEIGHBOURHOOD_LIMIT))
        if not skip.isdigit():
            raise ValidationError({"skip": f"skip must be a whole number, not {skip!r}."})
        if not limit.isdigit() or not 1 <= int(limit) <= selectors.NEIGHBOURHOOD_LIMIT * 4:
            raise ValidationError({"limit": f"limit must be from 1 to {selectors.NEIGHBOURHOOD_LIMIT * 4}."})
        answer = _with_store(lambda store: selectors.graph_neighbourhood(
            store=store, user=request.user, key=key, skip=int(skip), limit=int(limit)))
        if answer is None:
            raise Http404
        return Response(answer)


class QueryInput(serializers.Serializer):
    cypher = serializers.CharField(max_length=20_000, trim_whitespace=True)
    params = serializers.DictField(required=False, default=dict)


class QueryView(APIView):
    """Site admins only: a Cypher statement can read any project's nodes, so it cannot be offered to
    project members without leaking other projects."""

    permission_classes = [IsConsoleUser]

    @extend_schema(request=QueryInput, responses=OpenApiTypes.OBJECT)
    def post(self, request):
        data = QueryInput(data=request.data)
        data.is_valid(raise_exception=True)

        def read(store):
            try:
                return selectors.graph_query(store=store, statement=data.validated_data["cypher"],
                                             params=data.validated_data["params"])
            except selectors.QueryRefused as exc:
                raise ValidationError({"cypher": [str(exc)]}) from None
            except GraphUnavailable:
                raise
            except GraphStoreError as exc:
                raise ValidationError({"cypher": [f"The graph refused this statement: {exc}"]}) from None

        return Response(_with_store(read))
