from rest_framework import serializers

from trainer_app.models import Membership, Queue, Role, Worker


class ProjectOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    description = serializers.CharField()
    role = serializers.CharField(help_text="the requesting user's role: analyst, lead or admin")


class ProjectInput(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    description = serializers.CharField(required=False, allow_blank=True, default="")


class MembershipInput(serializers.Serializer):
    username = serializers.CharField()
    role = serializers.ChoiceField(choices=Role.choices)


class MembershipOutput(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username")

    class Meta:
        model = Membership
        fields = ["username", "role"]


class WorkerOutput(serializers.ModelSerializer):
    class Meta:
        model = Worker
        fields = ["id", "name", "hostname", "status", "last_heartbeat", "queues", "gpus", "cpu_count", "ram_mb",
                  "software", "started_at"]


class TokenInput(serializers.Serializer):
    username = serializers.CharField()
    password = serializers.CharField(style={"input_type": "password"}, trim_whitespace=False)


class TokenOutput(serializers.Serializer):
    token = serializers.CharField()


class QueueOutput(serializers.ModelSerializer):
    queued = serializers.IntegerField(read_only=True, default=None, help_text="runs waiting on it")
    active = serializers.IntegerField(read_only=True, default=None, help_text="runs starting or running on it")

    class Meta:
        model = Queue
        fields = ["id", "name", "description", "resource_class", "paused", "priority", "max_concurrent",
                  "allowed_roles", "preemptible", "queued", "active"]


class QueueInput(serializers.Serializer):
    name = serializers.CharField(max_length=64)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    priority = serializers.IntegerField(required=False, default=5)
    resource_class = serializers.CharField(required=False, default="cpu", help_text="cpu or gpu")
    max_concurrent = serializers.IntegerField(required=False, allow_null=True, default=None,
                                              help_text="most runs starting or running at once; null = no limit")
    allowed_roles = serializers.ListField(child=serializers.CharField(), required=False, default=list,
                                          help_text="project roles that may use it (analyst, lead, admin); "
                                                    "empty = everyone")
    paused = serializers.BooleanField(required=False, default=False)
    preemptible = serializers.BooleanField(required=False, default=False,
                                           help_text="a waiting run of higher priority may stop (checkpoint and "
                                                     "requeue) this queue's runs to start")


class QueueUpdateInput(serializers.Serializer):
    name = serializers.CharField(max_length=64, required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    priority = serializers.IntegerField(required=False)
    resource_class = serializers.CharField(required=False)
    max_concurrent = serializers.IntegerField(required=False, allow_null=True)
    allowed_roles = serializers.ListField(child=serializers.CharField(), required=False)
    paused = serializers.BooleanField(required=False)
    preemptible = serializers.BooleanField(required=False)
